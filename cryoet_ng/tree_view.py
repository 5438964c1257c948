"""Lazy, bounded read access to a data tree for long-lived readers (the server).

A :class:`~cryoet_ng.catalogue.Catalogue` holds what it has read; the server must answer
for any run of a 30,000-run tree without holding the tree. A :class:`TreeView` holds:

* the index's top file (:mod:`cryoet_ng.index`) when there is one: dataset ids, titles,
  object names, run names and counts, about 0.2 KB per run;
* at most ``max_records`` dataset records (LRU), for runs read from the index.

A run is read on demand, one at a time: on a local tree by a live scan of that one run
(a few folder listings and its metadata files: milliseconds whatever the tree's size,
and always current), on an object store from the index's record of its dataset (one
gzip'd JSON, about 45 KB for 300 runs), or by a live scan of the run when the store has
no index. Without an index, dataset and run names come from folder listings, and the
counts are unknown (None): ``cryoet-ng index`` makes them known.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from cryoet_ng.catalogue import Catalogue, CatalogueWarning, Run
from cryoet_ng.index import TOP, IndexFormatError, TreeIndex, objects_of
from cryoet_ng.store import StoreError, open_store, tree_path
from cryoet_ng.treescan import LAYOUT_FOLDERS, Record, Scanner, parse_document

log = logging.getLogger(__name__)

INDEX_RECHECK_SECONDS = 30.0
RUN_MARKERS = ("run_metadata.json", *LAYOUT_FOLDERS)  # what makes a folder a run


@dataclass(frozen=True)
class RunInfo:
    name: str
    tomograms: int | None  # None: unknown (no index)
    annotations: int | None


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    title: str
    runs: tuple[RunInfo, ...]
    objects: tuple[str, ...] = ()  # annotation object names (index only)

    @property
    def tomograms(self) -> int | None:
        counts = [r.tomograms for r in self.runs]
        return None if None in counts else sum(c or 0 for c in counts)

    @property
    def annotations(self) -> int | None:
        counts = [r.annotations for r in self.runs]
        return None if None in counts else sum(c or 0 for c in counts)


@dataclass
class _Listings:
    """Names found by listing the tree (no index), kept for ``recheck`` seconds."""

    datasets: tuple[float, list[str]] | None = None
    runs: dict[str, tuple[float, tuple[str, list[str]]]] = field(default_factory=dict)


class TreeView:
    """The tree at ``data_root`` (a folder or URL), its index read from ``index_root``
    (default: beside the tree) when first needed, safe to share between threads."""

    def __init__(
        self,
        data_root: str | Path,
        index_root: str | Path | None = None,
        *,
        max_records: int = 16,
        recheck_seconds: float = INDEX_RECHECK_SECONDS,
    ) -> None:
        self.store = open_store(data_root)
        self.root = tree_path(self.store, "")
        self.index_store = open_store(index_root if index_root is not None else data_root)
        self.live = self.store.local_path("") is not None  # runs scanned live
        self.max_records = max_records
        self.recheck_seconds = recheck_seconds
        self.warnings: list[CatalogueWarning] = []
        self._lock = threading.Lock()
        self._records: OrderedDict[str, Record] = OrderedDict()
        self._listings = _Listings()
        self._infos: dict[str, DatasetInfo] = {}
        self._index: TreeIndex | None = None
        self._index_version: str | None = None
        # The top file is read on first use, not here: on 30,000 runs that is 0.9 s (4.5 MB
        # of gzip'd JSON, machine loaded) that a worker's start-up and a /view of a local
        # tree (read live) do not need.
        self._checked = -math.inf
        self._loaded = False

    # -- the index --------------------------------------------------------------------
    @property
    def index(self) -> TreeIndex | None:
        """The index's top file, re-read when it changed (checked every recheck seconds)."""
        now = time.monotonic()
        if now - self._checked >= self.recheck_seconds:
            self._checked = now
            try:
                entry = self.index_store.head(TOP)
            except StoreError:
                entry = None
            version = entry.version if entry is not None else None
            if version != self._index_version or not self._loaded:
                self._load_index()
        return self._index

    @property
    def index_version(self) -> str | None:
        """The version (ETag or mtime) of the index in use; None without one."""
        self.index  # noqa: B018 (re-checks the top file when due)
        return self._index_version

    def _load_index(self) -> None:
        self._checked = time.monotonic()
        self._loaded = True
        try:
            entry = self.index_store.head(TOP)
            index = TreeIndex.load(self.index_store) if entry is not None else None
        except (StoreError, IndexFormatError) as exc:
            self.warnings.append(CatalogueWarning(self.root, f"cannot read the index: {exc}"))
            entry, index = None, None
        # A published index (https) was built from a copy of the tree: any root is fine.
        described = index.top.get("root") if index is not None else self.store.url
        if described != self.store.url and self.store.can_list:
            log.warning(
                "index at %s describes %s, not %s; not used",
                self.index_store.url,
                described,
                self.store.url,
            )
            index = None
        with self._lock:
            self._index = index
            self._index_version = entry.version if entry is not None and index else None
            self._records.clear()
            self._infos = {}
        if index is None and not self.store.can_list:
            message = (
                f"no index at {self.index_store.url_of(TOP)}: an https:// tree needs its "
                f"published index (cryoet-ng index)"
            )
            self.warnings.append(CatalogueWarning(self.root, message))

    # -- names and counts -------------------------------------------------------------
    def dataset_ids(self) -> list[str]:
        index = self.index
        if index is not None:
            return index.dataset_ids
        cached = self._listings.datasets
        if cached is not None and time.monotonic() - cached[0] < self.recheck_seconds:
            return cached[1]
        ids, warnings = Scanner(self.store).dataset_ids() if self.store.can_list else ([], [])
        if warnings and not cached:
            self.warnings.extend(warnings)
        self._listings.datasets = (time.monotonic(), ids)
        return ids

    def dataset(self, dataset_id: str) -> DatasetInfo | None:
        """Title, runs with counts and object names of one dataset, without its record."""
        index = self.index
        if index is not None:
            cached = self._infos.get(dataset_id)
            if cached is not None:
                return cached
            info = index.top["datasets"].get(dataset_id)
            if info is None:
                return None
            runs = tuple(
                RunInfo(name, counts.get("tomograms"), counts.get("annotations"))
                for name, counts in sorted(info.get("runs", {}).items())
            )
            built = DatasetInfo(
                dataset_id, str(info.get("title") or ""), runs, tuple(info.get("objects", ()))
            )
            self._infos[dataset_id] = built  # until the index changes (listing pages)
            return built
        if dataset_id not in self.dataset_ids():
            return None
        title, names = self._listed(dataset_id)
        return DatasetInfo(dataset_id, title, tuple(RunInfo(n, None, None) for n in names))

    def _listed(self, dataset_id: str) -> tuple[str, list[str]]:
        """(title, run names) of a dataset from its folder (no index), cached a while."""
        cached = self._listings.runs.get(dataset_id)
        if cached is not None and time.monotonic() - cached[0] < self.recheck_seconds:
            return cached[1]
        title, names = "", []
        try:
            listing = self.store.list_folder(dataset_id)
            names = list(listing.folders)
            meta = next(
                (e for e in listing.files if e.key.endswith("/dataset_metadata.json")), None
            )
            if meta is not None:
                doc, _ = parse_document(self.store.read(meta.key))
                title = str((doc or {}).get("dataset_title") or (doc or {}).get("title") or "")
        except StoreError as exc:
            log.warning("%s", exc)
        local = self.store.local_path(dataset_id)
        if local is not None:  # leave out folders that are not runs (Images/ and such)
            names = [n for n in names if any((local / n / m).exists() for m in RUN_MARKERS)]
        with self._lock:
            self._listings.runs[dataset_id] = (time.monotonic(), (title, names))
            while len(self._listings.runs) > 4 * self.max_records:
                self._listings.runs.pop(next(iter(self._listings.runs)))
        return title, names

    def run_objects(self, dataset_id: str) -> dict[str, set[str]]:
        """Run name -> annotation object names, from the dataset's index record (empty
        without an index)."""
        record = self._record(dataset_id)
        if record is None:
            return {}
        return {name: objects_of(run) for name, run in record["runs"].items()}

    # -- runs -------------------------------------------------------------------------
    def run(self, dataset_id: str, run_name: str) -> tuple[Run | None, list[CatalogueWarning]]:
        """One run, built when asked for (None when the tree has no such run), and the
        warnings found building it."""
        if self.live or self.index is None:
            return Catalogue.scan_run(self.store, dataset_id, run_name)
        record = self._record(dataset_id)
        run_record = (record or {}).get("runs", {}).get(run_name)
        if record is None or run_record is None:
            return None, []
        return Catalogue.build_run(self.store, record, run_name)

    def _record(self, dataset_id: str) -> Record | None:
        index = self.index
        if index is None or dataset_id not in index.top["datasets"]:
            return None
        with self._lock:
            record = self._records.get(dataset_id)
            if record is not None:
                self._records.move_to_end(dataset_id)
                return record
        try:
            record = index.dataset_record(dataset_id)
        except (StoreError, IndexFormatError) as exc:
            log.warning("%s", exc)
            return None
        index.forget(dataset_id)  # this view bounds what it keeps; the index keeps nothing
        if record is None:
            return None
        with self._lock:
            self._records[dataset_id] = record
            while len(self._records) > self.max_records:
                self._records.popitem(last=False)
        return record
