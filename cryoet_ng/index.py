"""The tree index: every dataset's record (runs, listings with sizes and versions, metadata
documents; see :mod:`cryoet_ng.treescan`), stored beside the outputs, refreshed
incrementally and read lazily.

Layout, under ``<index root>/cryoet-ng-index/``::

    index.json.gz                   format, data root, per dataset: its file, signature,
                                    title and annotation object names (listings and
                                    search), and per run: tomogram and annotation counts
    datasets/<id>-<hash>.json.gz    one dataset record; the name carries a digest of the
                                    content, so an unchanged dataset is never rewritten

Why gzip'd JSON per dataset rather than one SQLite file: it works unchanged on object
storage (a reader fetches the top file and then only the datasets it is asked for; SQLite
on S3 would have to be downloaded whole, and cannot be updated in place), the top file
is replaced by a single atomic PUT (readers see the old or the new index, never a mix:
dataset files are content-named, so the ones an old top file names stay valid until
the next refresh removes them), and a refresh rewrites only the datasets that changed.
Measured on the generated 30,000-run tree (benchmarks/scale.py, machine at load 14 on 2
cores): the whole index is 4.5 MB, a dataset of 300 runs 45 KB gzip'd; opening the index
and building that dataset's catalogue took 1.7 s loaded (main's full scan: 400 s in the
same run); a refresh that finds nothing changed reads no document (151 s, all listing).

Refresh (``cryoet-ng index ROOT``, and ``precompute`` before it discovers jobs): list
every run (cheap: folder listings with sizes and ETags/mtimes), compare each run's
listing signature with the stored one, and read only the metadata documents of runs
whose listing changed (and of those, only the changed files). A ``--datasets`` or
``--runs`` refresh lists only those and keeps the rest of the index.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from cryoet_ng.store import NotFound, StoreError, TreeStore, open_store, tree_path
from cryoet_ng.treescan import CatalogueWarning, Record, Scanner, is_document

log = logging.getLogger(__name__)

FOLDER = "cryoet-ng-index"
TOP = f"{FOLDER}/index.json.gz"
FORMAT = "cryoet-ng-index/1"


class IndexFormatError(ValueError):
    """An index exists but cannot be used (wrong format, damaged); the message names it."""


# The shapes the readers rely on, checked when a file is read (a published https:// index
# is someone else's file): a damaged one is an IndexFormatError naming the file and the
# field, never a KeyError deep in the catalogue. Unknown fields are allowed (newer writers).
class _DatasetEntry(msgspec.Struct):
    file: str
    signature: str | None
    runs: dict[str, dict[str, int]]
    title: str = ""
    objects: list[str] = []


class _TopFile(msgspec.Struct):
    format: str
    root: str
    datasets: dict[str, _DatasetEntry]


class _RunRecord(msgspec.Struct):
    signature: str | None
    files: list[tuple[str, int, str]]
    docs: dict[str, Any]
    errors: dict[str, str] = {}


class _MetadataRecord(msgspec.Struct):
    file: tuple[str, int, str] | None = None
    doc: dict[str, Any] | None = None
    error: str | None = None


class _DatasetRecord(msgspec.Struct):
    dataset: str
    signature: str | None
    metadata: _MetadataRecord
    runs: dict[str, _RunRecord]


def _check(obj: Any, shape: type, url: str) -> None:
    try:
        msgspec.convert(obj, shape)
    except msgspec.ValidationError as exc:
        raise IndexFormatError(f"{url}: damaged index file ({exc})") from exc


def _pack(obj: Any) -> bytes:
    return gzip.compress(json.dumps(obj, separators=(",", ":")).encode(), mtime=0)


def _unpack(data: bytes, url: str) -> Any:
    try:
        return json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as exc:
        raise IndexFormatError(f"{url}: damaged index file ({exc})") from exc


def run_counts(record: Record) -> dict[str, int]:
    """Tomograms and annotations of one run record, from its document names."""
    docs = [rel for rel in record["docs"] if is_document(rel)]
    tomograms = sum(rel.endswith("tomogram_metadata.json") for rel in docs)
    annotations = sum("/Annotations/" in rel for rel in docs)
    return {"tomograms": tomograms, "annotations": annotations}


def objects_of(run_record: Record) -> set[str]:
    """Annotation object names in one run record's metadata documents."""
    names = set()
    for rel, doc in run_record.get("docs", {}).items():
        if "/Annotations/" in rel and isinstance(doc, dict):
            obj = doc.get("annotation_object")
            if isinstance(obj, dict) and obj.get("name"):
                names.add(str(obj["name"]))
    return names


def dataset_facts(record: Record) -> dict[str, Any]:
    """What the index's top file keeps of a dataset record for listings and search: its
    title and the annotation object names of its runs."""
    doc = (record.get("metadata") or {}).get("doc") or {}
    title = doc.get("dataset_title") or doc.get("title") or ""
    objects: set[str] = set()
    for run in record["runs"].values():
        objects |= objects_of(run)
    return {"title": str(title), "objects": sorted(objects)}


@dataclass
class TreeIndex:
    """The index stored in ``store`` (under :data:`FOLDER`), with dataset records cached."""

    store: TreeStore
    top: dict[str, Any]
    _records: dict[str, Record] = field(default_factory=dict)
    _stored: bytes = b""  # the top file as last read or written

    @classmethod
    def load(cls, store: TreeStore) -> TreeIndex | None:
        """The index in ``store``, or None when there is none."""
        try:
            data = store.read(TOP)
        except NotFound:
            return None
        top = _unpack(data, store.url_of(TOP))
        if not isinstance(top, dict) or top.get("format") != FORMAT:
            found = top.get("format") if isinstance(top, dict) else type(top).__name__
            raise IndexFormatError(f"{store.url_of(TOP)}: not a {FORMAT} index (found {found!r})")
        _check(top, _TopFile, store.url_of(TOP))
        return cls(store, top, _stored=_pack(top))

    @classmethod
    def empty(cls, store: TreeStore, root: str) -> TreeIndex:
        return cls(store, {"format": FORMAT, "root": root, "datasets": {}})

    @property
    def dataset_ids(self) -> list[str]:
        return sorted(self.top["datasets"])

    def runs_of(self, dataset_id: str) -> dict[str, dict[str, int]]:
        """Run name -> counts, without loading the dataset."""
        return dict(self.top["datasets"].get(dataset_id, {}).get("runs", {}))

    def dataset_record(self, dataset_id: str) -> Record | None:
        if dataset_id not in self._records:
            info = self.top["datasets"].get(dataset_id)
            if info is None:
                return None
            key = f"{FOLDER}/datasets/{info['file']}"
            record = _unpack(self.store.read(key), self.store.url_of(key))
            _check(record, _DatasetRecord, self.store.url_of(key))
            if record["dataset"] != dataset_id:
                raise IndexFormatError(
                    f"{self.store.url_of(key)}: holds dataset {record['dataset']!r}, "
                    f"not {dataset_id!r}"
                )
            self._records[dataset_id] = record
        return self._records[dataset_id]

    def forget(self, dataset_id: str) -> None:
        """Drop the cached record (a reader that keeps its own bounded cache)."""
        self._records.pop(dataset_id, None)

    def put_dataset(self, record: Record) -> bool:
        """Store one dataset record; False when the stored one is identical (no write).

        A record whose signature (its metadata file's and its runs' listing signatures)
        is the stored one is not even serialised: on a no-op refresh of 30,000 runs that
        was ~15% of the time (json.dumps + gzip of every dataset)."""
        old = self.top["datasets"].get(record["dataset"])
        unchanged = (
            old is not None
            and record.get("signature") is not None
            and old.get("signature") == record["signature"]
            and all(r.get("signature") for r in record["runs"].values())
        )
        data = b""
        if unchanged:
            name = old["file"]
        else:
            data = _pack(record)
            digest = hashlib.blake2b(data, digest_size=8).hexdigest()
            name = f"{record['dataset']}-{digest}.json.gz"
        self._records[record["dataset"]] = record
        runs = {n: run_counts(r) for n, r in record["runs"].items()}
        self.top["datasets"][record["dataset"]] = {
            "file": name,
            "signature": record["signature"],
            "runs": runs,
            **dataset_facts(record),
        }
        if unchanged or (old is not None and old["file"] == name):
            return False
        self.store.write(f"{FOLDER}/datasets/{name}", data)
        return True

    def drop_dataset(self, dataset_id: str) -> None:
        self.top["datasets"].pop(dataset_id, None)
        self._records.pop(dataset_id, None)

    def save(self) -> None:
        """Write the top file (one atomic write) if it changed, then remove the dataset files
        it no longer names."""
        self.top["datasets"] = dict(sorted(self.top["datasets"].items()))
        data = _pack(self.top)
        if data == self._stored:
            return
        self.store.write(TOP, data)
        self._stored = data
        if not self.store.can_list:
            return
        named = {info["file"] for info in self.top["datasets"].values()}
        try:
            stale = [
                e.key
                for e in self.store.list_tree(f"{FOLDER}/datasets")
                if e.key.rsplit("/", 1)[-1] not in named
            ]
        except StoreError:
            return
        for key in stale:
            self.store.delete(key)


@dataclass
class RefreshReport:
    datasets: int = 0  # listed
    runs: int = 0  # listed
    runs_read: int = 0  # whose listing changed, so their documents were looked at
    reads: int = 0  # documents read from the data tree
    written: int = 0  # dataset files written
    seconds: float = 0.0
    warnings: list[CatalogueWarning] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.datasets} datasets, {self.runs} runs listed; {self.runs_read} runs changed "
            f"({self.reads} documents read); {self.written} dataset files written "
            f"in {self.seconds:.1f} s"
        )


def refresh(
    data_root: str | Path,
    index_root: str | Path | None = None,
    datasets: list[str] | None = None,
    runs: list[str] | None = None,
    *,
    rebuild: bool = False,
    keep: bool = True,
) -> tuple[list[Record], RefreshReport]:
    """Bring the index of ``data_root`` (stored under ``index_root``, default the data root)
    up to date and return the records of what was scanned (none unless ``keep``; build a
    catalogue of them with ``Catalogue.from_records``)."""
    start = time.perf_counter()
    store = open_store(data_root)
    index_store = open_store(index_root if index_root is not None else data_root)
    index = None if rebuild else TreeIndex.load(index_store)
    if index is not None and index.top.get("root") != store.url:
        log.info("index at %s was built for %s; rebuilding", index_store.url, index.top.get("root"))
        index = None
    if index is None:
        index = TreeIndex.empty(index_store, store.url)
    report = RefreshReport()
    scanner = Scanner(store)
    reads_before = store.requests["read"]
    ids, warnings = scanner.dataset_ids()
    report.warnings.extend(warnings)
    # Datasets gone from the tree leave the index (not when the root could not be listed).
    if (ids or not warnings) and not datasets and not runs:
        for gone in set(index.dataset_ids) - set(ids):
            index.drop_dataset(gone)
    records: list[Record] = []
    for dataset_id in ids:
        if datasets and dataset_id not in datasets:
            continue
        if runs and not datasets and not _may_hold(store, dataset_id, runs):
            continue
        previous = index.dataset_record(dataset_id) if dataset_id in index.top["datasets"] else None
        try:
            record = scanner.dataset_record(dataset_id, runs, previous)
        except StoreError as exc:
            report.warnings.append(
                CatalogueWarning(tree_path(store, dataset_id), f"cannot list: {exc.reason}")
            )
            continue
        report.datasets += 1
        listed = [n for n in record["runs"] if not runs or n in runs]
        report.runs += len(listed)
        old_runs = (previous or {}).get("runs", {})
        report.runs_read += sum(record["runs"][n] is not old_runs.get(n) for n in listed)
        report.written += index.put_dataset(record)
        if keep:
            records.append(record)
    index.save()
    report.reads = store.requests["read"] - reads_before
    report.seconds = time.perf_counter() - start
    return [only_runs(r, runs) for r in records], report


def _may_hold(store: TreeStore, dataset_id: str, runs: list[str]) -> bool:
    """``--runs`` without ``--datasets``: skip datasets without a folder of that name."""
    local = store.local_path(dataset_id)
    if local is not None:
        return any((local / name).is_dir() for name in runs)
    return True  # one folder listing per dataset either way


def only_runs(record: Record, runs: list[str] | None) -> Record:
    """The record with only the named runs (all without names)."""
    if not runs:
        return record
    return {**record, "runs": {n: r for n, r in record["runs"].items() if n in runs}}
