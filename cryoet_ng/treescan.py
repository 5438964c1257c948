"""Store -> records: list a tree and read its metadata documents (the catalogue builds
items from the records, :mod:`cryoet_ng.catalogue`).

A *dataset record* is plain JSON (what :mod:`cryoet_ng.index` stores)::

    {"dataset": "10000", "signature": "<hex>",
     "metadata": {"file": [key, size, version] | null, "doc": {...} | null, "error": str | null},
     "runs": {"TS_026": {"signature": "<hex>" | null,
                         "files": [[relative key, size, version], ...],
                         "docs": {relative key: {...}}, "errors": {relative key: "message"}}}}

``files`` is the run's listing: ``run_metadata.json`` and everything under
``Reconstructions/`` and (old layout) ``Tomograms/``, except precompute outputs
(``NeuroglancerPrecompute/``), with every ``*.zarr`` folder folded into one entry
(``x.zarr/``, total size, digest of its objects' keys, sizes and versions): a run of the
portal lists as a few dozen entries instead of thousands of chunks, and the zarr entry's
version is the cheap change signature of that input. ``docs`` holds the metadata
documents as parsed JSON, untouched, so typed records can later be parsed from them
without changing the format. A run whose documents could not all be read (a store
error, as opposed to a malformed file) gets ``signature`` null, so the next refresh
reads it again instead of trusting a partial record.

Listing costs per run: one folder listing of the run and one recursive listing per
layout folder; per dataset one folder listing. Remote runs are scanned 16 at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cryoet_ng import metadata
from cryoet_ng.store import Entry, StoreError, TreePath, TreeStore, tree_path

log = logging.getLogger(__name__)

LAYOUT_FOLDERS = ("Reconstructions", "Tomograms")  # current and old layout
OUTPUT_FOLDER = "NeuroglancerPrecompute"
REMOTE_THREADS = 16
_DOC_PATTERNS = (
    re.compile(r"^run_metadata\.json$"),
    re.compile(r"^Reconstructions/VoxelSpacing[^/]+/Tomograms/[^/]+/tomogram_metadata\.json$"),
    re.compile(r"^Reconstructions/VoxelSpacing[^/]+/Annotations/[^/]+/[^/]*[0-9]\.json$"),
    re.compile(r"^Tomograms/VoxelSpacing[^/]+/CanonicalTomogram/tomogram_metadata\.json$"),
    re.compile(r"^Tomograms/VoxelSpacing[^/]+/Annotations/\d+-[^/]*[0-9]\.json$"),
)

Record = dict[str, Any]


@dataclass(frozen=True)
class CatalogueWarning:
    """A problem found reading the tree, naming the file or folder (see the catalogue)."""

    path: TreePath
    message: str
    # True when an input was skipped because of it (a batch then fails); False for notes
    # about a valid but partial tree, such as a run without tomograms.
    skipped: bool = True

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def digest(items: Iterable[Any]) -> str:
    return hashlib.blake2b(json.dumps(list(items)).encode(), digest_size=16).hexdigest()


# -- listing -----------------------------------------------------------------------------


def fold(entries: Iterable[Entry], base: str) -> list[list[Any]]:
    """Run listing -> sorted ``[relative key, size, version]``, zarr folders folded."""
    files: dict[str, list[Any]] = {}
    zarrs: dict[str, list[tuple[str, int, str]]] = {}
    for entry in entries:
        rel = entry.key[len(base) + 1 :] if base else entry.key
        parts = rel.split("/")
        if OUTPUT_FOLDER in parts[:-1]:
            continue
        cut = next((i for i, p in enumerate(parts[:-1]) if p.endswith(".zarr")), None)
        if cut is None:
            files[rel] = [rel, entry.size, entry.version]
        else:
            folder = "/".join(parts[: cut + 1]) + "/"
            zarrs.setdefault(folder, []).append(
                ("/".join(parts[cut + 1 :]), entry.size, entry.version)
            )
    for folder, objects in zarrs.items():
        objects.sort()
        files[folder] = [folder, sum(o[1] for o in objects), digest(objects)]
    return [files[k] for k in sorted(files)]


def is_document(rel: str) -> bool:
    return any(p.match(rel) for p in _DOC_PATTERNS)


def parse_document(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """A metadata document (a JSON object, strictly parsed: :func:`cryoet_ng.metadata.loads`),
    or None and why not."""
    doc, problem = metadata.loads(data)
    if problem is not None:
        return None, f"{problem}; skipped"
    return doc, None


class Scanner:
    """Lists and reads one tree through its store, reusing a previous record where the
    listing shows nothing changed (:mod:`cryoet_ng.index`)."""

    def __init__(self, store: TreeStore) -> None:
        self.store = store

    def run_record(self, run_key: str, previous: Record | None) -> Record:
        listing = self.store.list_folder(run_key)
        entries: list[Entry] = [e for e in listing.files if e.key.endswith("/run_metadata.json")]
        for folder in LAYOUT_FOLDERS:
            if folder in listing.folders:
                entries += self.store.list_tree(f"{run_key}/{folder}")
        files = fold(entries, run_key)
        signature = digest(files)
        if previous is not None and previous.get("signature") == signature:
            return previous
        old_files = {f[0]: f for f in (previous or {}).get("files", [])}
        old_docs = (previous or {}).get("docs", {})
        old_errors = (previous or {}).get("errors", {})
        docs: dict[str, Any] = {}
        errors: dict[str, str] = {}
        complete = True
        for rel, _size, version in files:
            if not is_document(rel):
                continue
            if old_files.get(rel) == [rel, _size, version] and (
                rel in old_docs or rel in old_errors
            ):
                if rel in old_docs:
                    docs[rel] = old_docs[rel]
                else:
                    errors[rel] = old_errors[rel]
                continue
            try:
                data = self.store.read(f"{run_key}/{rel}", version)
            except StoreError as exc:
                errors[rel] = exc.reason
                complete = False
                continue
            doc, error = parse_document(data)
            if doc is not None:
                docs[rel] = doc
            else:
                errors[rel] = error or "unreadable"
        return {
            "signature": signature if complete else None,
            "files": files,
            "docs": docs,
            "errors": errors,
            "folders": [f for f in LAYOUT_FOLDERS if f in listing.folders],
        }

    def dataset_record(
        self, dataset_id: str, runs: list[str] | None, previous: Record | None
    ) -> Record:
        listing = self.store.list_folder(dataset_id)
        meta: dict[str, Any] = {"file": None, "doc": None, "error": None}
        meta_entry = next(
            (e for e in listing.files if e.key.endswith("/dataset_metadata.json")), None
        )
        if meta_entry is not None:
            meta["file"] = [meta_entry.key, meta_entry.size, meta_entry.version]
            old = (previous or {}).get("metadata") or {}
            if old.get("file") == meta["file"] and old.get("error") is None:
                meta = old
            else:
                try:
                    doc, error = parse_document(self.store.read(meta_entry.key, meta_entry.version))
                except StoreError as exc:
                    doc, error = None, exc.reason
                meta.update(doc=doc, error=error)
        old_runs: dict[str, Record] = dict((previous or {}).get("runs", {}))
        names = [n for n in listing.folders if not runs or n in runs]
        keys = [f"{dataset_id}/{n}" for n in names]

        def scan(key: str, name: str) -> Record:
            return self.run_record(key, old_runs.get(name))

        records = self._map(scan, keys, names)
        new_runs = dict(old_runs) if runs else {}
        for name, record in zip(names, records, strict=True):
            if _is_run(record):
                new_runs[name] = record
            else:
                new_runs.pop(name, None)
        ordered = {n: new_runs[n] for n in sorted(new_runs)}
        record = {"dataset": dataset_id, "metadata": meta, "runs": ordered}
        record["signature"] = digest(
            [meta["file"], *[(n, r.get("signature")) for n, r in ordered.items()]]
        )
        return record

    def _map(
        self, fn: Callable[[str, str], Record], keys: list[str], names: list[str]
    ) -> list[Record]:
        if self.store.local_path("") is not None or len(keys) < 2:
            return [fn(k, n) for k, n in zip(keys, names, strict=True)]
        with ThreadPoolExecutor(REMOTE_THREADS) as pool:
            return list(pool.map(fn, keys, names))

    def dataset_ids(self) -> tuple[list[str], list[CatalogueWarning]]:
        """Numeric folders at the root, with a warning when the root is not a portal tree."""
        root = tree_path(self.store, "")
        try:
            listing = self.store.list_folder("")
        except StoreError as exc:
            return [], [CatalogueWarning(root, f"cannot list the data root: {exc.reason}")]
        if listing.empty:
            local = self.store.local_path("")
            missing = local is not None and not local.is_dir()
            what = "data root is not a directory" if missing else "data root is empty or missing"
            return [], [CatalogueWarning(root, what)]
        ids = [f for f in listing.folders if f.isdigit()]
        if not ids:
            return [], [
                CatalogueWarning(
                    root, "no dataset folders (numeric names) here: not a portal data tree"
                )
            ]
        return sorted(ids), []


def _is_run(record: Record) -> bool:
    """A run folder has run_metadata.json or a layout folder (Images/ and such are not)."""
    return bool(record["folders"]) or any(f[0] == "run_metadata.json" for f in record["files"])


# -- entry point ----------------------------------------------------------------------------


def scan_records(
    store: TreeStore, datasets: list[str] | None, runs: list[str] | None
) -> tuple[list[Record], list[CatalogueWarning]]:
    """Records of the tree's datasets (optionally only the named datasets and runs)."""
    scanner = Scanner(store)
    ids, warnings = scanner.dataset_ids()
    records = []
    for dataset_id in ids:
        if datasets and dataset_id not in datasets:
            continue
        try:
            records.append(scanner.dataset_record(dataset_id, runs, None))
        except StoreError as exc:
            warnings.append(
                CatalogueWarning(tree_path(store, dataset_id), f"cannot list: {exc.reason}")
            )
    return records, warnings
