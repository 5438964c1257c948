"""Fingerprints: what a finished output was made from, so a re-run can skip it.

A fingerprint is a BLAKE2b digest of

* :data:`FORMAT_VERSION`, bumped whenever a converter's output bytes change for the same
  input (new encoding, new summary field), so old outputs are redone;
* the job's type and parameters (shape, ids, voxel spacing, tomogram size and extent,
  diameter): :meth:`~precompute.jobs.Job.parameters`;
* the configuration options the converter reads (:meth:`~precompute.jobs.Job.options`: all
  of ``precompute`` except ``workers`` and the memory budgets, plus ``layers`` for
  point-like shapes, whose lines and sizes follow the layer style);
* the *content* of every input (:meth:`~precompute.jobs.Job.sources`): a file's bytes, or
  for a folder (OME-Zarr) every file's relative path, size and bytes, in sorted order.

Why contents and not modification times: mtimes change when a tree is copied or synced
without ``-t`` (redoing everything needlessly) and do not change when a file is restored
with its old mtime (skipping stale work). Hashing reads each input once more, but the
converter reads it anyway, hashing runs on the workers in parallel, and BLAKE2b runs at
roughly 1 GB/s per core (see benchmarks/batch.py), below the cost of any conversion.

Cheap signatures first (:func:`fingerprint` with ``job.known_fingerprint``): when the
listing shows an input with the same sizes and versions (ETag or mtime) as when its
fingerprint was last computed, and the job's parameters and options digest the same,
the recorded fingerprint is used without reading the input (precompute/signatures.py
keeps those records beside the outputs). Contents are hashed only for what changed, so a
no-op re-run over the portal reads listings and summaries, not data.

Absolute paths are deliberately left out: moving a data tree together with its outputs
keeps them valid, and two copies of one tree produce byte-identical summaries.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryoet_ng.config import Config
from cryoet_ng.store import Location, TreePath
from precompute.jobs import Job

# Bump when any converter writes different bytes for the same input and options.
# 2: meshes simplified by meshoptimizer.
# 3: segment properties and the name property describe the annotation (cryoet_ng.about).
# 4: 2-D contrast from full resolution, inverted VR range, particle diameters from the table
#    of cryoet_ng/particles.py (branch viewer; it had called this 3 too).
FORMAT_VERSION = "cryoet-ng-precompute/4"
_BLOCK = 1 << 20


def fingerprint(job: Job, config: Config) -> str:
    """``blake2b:<hex>`` of everything the output of ``job`` depends on (or the fingerprint
    known from an unchanged signature, see the module notes)."""
    if job.known_fingerprint is not None:
        return job.known_fingerprint
    digest = hashlib.blake2b(digest_size=20)
    digest.update(parameters_digest(job, config).encode())
    for source in job.sources():
        digest.update(content_digest(source).encode())
    return f"blake2b:{digest.hexdigest()}"


def parameters_digest(job: Job, config: Config) -> str:
    """Digest of everything but the input's content: format version, parameters, options."""
    record = {
        "format": FORMAT_VERSION,
        "job": job.parameters(),
        "options": job.options(config),
    }
    return json.dumps(record, sort_keys=True, default=list)


def content_digest(path: TreePath) -> str:
    """Digest of a file's bytes, or of a folder's sorted (path, size, bytes) entries.

    A missing input digests to a fixed marker; the converter then reports the real error.
    """
    if isinstance(path, Location):
        return _store_digest(path)
    digest = hashlib.blake2b(digest_size=20)
    if path.is_file():
        _hash_file(digest, path)
    elif path.is_dir():
        for relative, full in _walk(path):
            digest.update(f"{relative}\0{full.stat().st_size}\0".encode())
            _hash_file(digest, full)
    else:
        digest.update(b"<missing>")
    return digest.hexdigest()


def _store_digest(location: Location) -> str:
    """:func:`content_digest` of an input on an object store: the same digest as the local
    copy would give (sorted relative keys, sizes and bytes), read through the store."""
    digest = hashlib.blake2b(digest_size=20)
    store = location.store
    if store.head(location.key) is not None:
        digest.update(store.read(location.key))
        return digest.hexdigest()
    if not store.can_list:
        return f"unlisted:{location.url}"  # an https:// tree: the index's signature decides
    entries = sorted(store.list_tree(location.key), key=lambda e: e.key)
    if not entries:
        digest.update(b"<missing>")
    for entry in entries:
        relative = entry.key[len(location.key) + 1 :]
        digest.update(f"{relative}\0{entry.size}\0".encode())
        digest.update(store.read(entry.key))
    return digest.hexdigest()


def _walk(root: Path) -> list[tuple[str, Path]]:
    """Every file under ``root`` as (posix relative path, path), sorted for determinism."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            full = Path(folder, name)
            found.append((full.relative_to(root).as_posix(), full))
    found.sort()
    return found


def _hash_file(digest: Any, path: Path) -> None:
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
