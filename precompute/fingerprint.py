"""Fingerprints: what a finished output was made from, so a re-run can skip it.

A fingerprint is a BLAKE2b digest of

* :data:`FORMAT_VERSION`, bumped whenever a converter's output bytes change for the same
  input (new encoding, new summary field), so old outputs are redone;
* the job's parameters (shape, ids, voxel spacing, tomogram size and extent, diameter);
* the configuration options the converter reads (all of ``precompute`` except ``workers``,
  plus ``layers`` for point-like shapes, whose lines and sizes follow the layer style);
* the *content* of the input: a file's bytes, or for a folder (OME-Zarr) every file's
  relative path, size and bytes, in sorted order.

Why contents and not modification times: mtimes change when a tree is copied or synced
without ``-t`` (redoing everything needlessly) and do not change when a file is restored
with its old mtime (skipping stale work). Hashing reads each input once more, but the
converter reads it anyway, hashing runs on the workers in parallel, and BLAKE2b runs at
roughly 1 GB/s per core (see benchmarks/batch.py), below the cost of any conversion.

Absolute paths are deliberately left out: moving a data tree together with its outputs
keeps them valid, and two copies of one tree produce byte-identical summaries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryoet_ng.catalogue import POINT_SHAPES
from cryoet_ng.config import Config
from precompute.jobs import AnnotationJob, Job, TomogramJob

# Bump when any converter writes different bytes for the same input and options.
FORMAT_VERSION = "cryoet-ng-precompute/2"
_BLOCK = 1 << 20


def fingerprint(job: Job, config: Config) -> str:
    """``blake2b:<hex>`` of everything the output of ``job`` depends on."""
    digest = hashlib.blake2b(digest_size=20)
    record = {
        "format": FORMAT_VERSION,
        "job": _parameters(job),
        "options": _options(job, config),
    }
    digest.update(json.dumps(record, sort_keys=True, default=list).encode())
    digest.update(content_digest(job.source).encode())
    return f"blake2b:{digest.hexdigest()}"


def content_digest(path: Path) -> str:
    """Digest of a file's bytes, or of a folder's sorted (path, size, bytes) entries.

    A missing input digests to a fixed marker; the converter then reports the real error.
    """
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


def _parameters(job: Job) -> dict[str, Any]:
    """The job's fields minus locations (sources are covered by their content)."""
    fields = dataclasses.asdict(job)
    for location in ("source", "output", "summary", "mrc"):
        fields.pop(location, None)
    fields["type"] = type(job).__name__
    if isinstance(job, AnnotationJob):
        fields["source_name"] = job.source.name  # the format is read from the suffix
    return fields


def _options(job: Job, config: Config) -> dict[str, Any]:
    if isinstance(job, TomogramJob):
        return {"contrast_clip_fraction": config.precompute.contrast_clip_fraction}
    options = dataclasses.asdict(config.precompute)
    options.pop("workers", None)  # parallelism never changes the bytes
    if job.shape in POINT_SHAPES:
        # Conservative: the whole layer style, since point converters size lines and
        # points from it; a style change only redoes the (cheap) point layers.
        options["layers"] = dataclasses.asdict(config.layers)
    return options
