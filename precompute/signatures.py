"""Fingerprints known from cheap signatures, so a no-op re-run reads no input data.

For every finished job the batch records, per dataset in
``<out root>/cryoet-ng-index/fingerprints/<dataset>.json.gz``::

    {"<output, relative to the out root>": [input signature, parameters digest, fingerprint]}

The input signature comes from the catalogue's listing (size and ETag/mtime of an
ndjson file; for an OME-Zarr folder a digest of every chunk's key, size and version),
so computing it costs nothing beyond the listing the index refresh does anyway. On the
next run a job whose signature and parameters digest both match gets the recorded
fingerprint (``job.known_fingerprint``) and its worker compares it with the summary
without hashing the input; any other job hashes its input as before.

Why beside the outputs and not in the summaries: signatures are store-specific (an S3
ETag, a local mtime), while summaries stay byte-identical between two copies of one tree
on different stores. Losing these records only costs one hashing run.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryoet_ng.config import Config
from cryoet_ng.index import FOLDER
from cryoet_ng.store import NotFound, StoreError, TreeStore, open_store
from precompute.fingerprint import parameters_digest
from precompute.jobs import Job

log = logging.getLogger(__name__)

Records = dict[str, list[str]]


def _params(job: Job, config: Config) -> str:
    return hashlib.blake2b(parameters_digest(job, config).encode(), digest_size=16).hexdigest()


class SignatureRecords:
    """The records of one output root, loaded per dataset on first use."""

    def __init__(self, store: TreeStore, local_root: Path) -> None:
        self.store = store
        self.local_root = local_root  # where job outputs and summaries are (or are staged)
        self._datasets: dict[str, Records] = {}

    @classmethod
    def of(cls, out_url: str, local_root: Path) -> SignatureRecords:
        return cls(open_store(out_url), local_root)

    def _key(self, dataset_id: str) -> str:
        return f"{FOLDER}/fingerprints/{dataset_id}.json.gz"

    def records(self, dataset_id: str) -> Records:
        if dataset_id not in self._datasets:
            records: Records = {}
            try:
                loaded = json.loads(gzip.decompress(self.store.read(self._key(dataset_id))))
                if isinstance(loaded, dict):
                    records = loaded
            except NotFound:
                pass
            except (StoreError, OSError, EOFError, ValueError) as exc:
                log.warning(
                    "%s: unreadable (%s); inputs will be hashed", self._key(dataset_id), exc
                )
            self._datasets[dataset_id] = records
        return self._datasets[dataset_id]

    def output_key(self, job: Job) -> str:
        return job.target.relative_to(self.local_root).as_posix()

    def apply(self, jobs: Iterable[Job], config: Config) -> list[Job]:
        """The jobs, with ``known_fingerprint`` set where the records still hold."""
        out = []
        for job in jobs:
            known = self.records(job.dataset_id).get(self.output_key(job))
            if (
                job.signature_covers_inputs()
                and known is not None
                and known[:2] == [job.signature, _params(job, config)]
            ):
                job = job.with_known_fingerprint(known[2])
            out.append(job)
        return out

    def update(self, finished: Iterable[tuple[Job, str]], config: Config) -> None:
        """Record the fingerprints of finished (done or skipped) jobs, as their workers
        reported them (the summaries may be on a worker's disk or in a bucket)."""
        changed: set[str] = set()
        for job, fingerprint in finished:
            if job.signature is None:
                continue
            entry = [job.signature, _params(job, config), fingerprint]
            records = self.records(job.dataset_id)
            key = self.output_key(job)
            if records.get(key) != entry:
                records[key] = entry
                changed.add(job.dataset_id)
        for dataset_id in sorted(changed):
            data: dict[str, Any] = dict(sorted(self._datasets[dataset_id].items()))
            try:
                self.store.write(
                    self._key(dataset_id), gzip.compress(json.dumps(data).encode(), mtime=0)
                )
            except StoreError as exc:
                log.warning("cannot record input signatures: %s", exc)
