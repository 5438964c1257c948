"""Viewer states cached per (dataset, run, tomogram, data URL), rebuilt when inputs change.

Runs are read when a request first names one (:class:`cryoet_ng.tree_view.TreeView`), never
the whole tree. What a state depends on is declared once, by
:func:`ngstate.inputs.state_inputs`. For each run read we keep a *watch list*: those inputs
for every tomogram of the run (the run's metadata files, the folders whose entries change
when an annotation, tomogram or voxel spacing is added or removed, the
NeuroglancerPrecompute folders, which atomic writes rename into, and each output with its
summary and ``info``). A request stats that list (a few dozen ``os.stat`` calls, tens of
microseconds) and reuses the cached state when nothing moved; otherwise that one run is
read again and the state rebuilt. On an object store there is nothing to stat: a run read
from the index is read again when the index's top file changes (``cryoet-ng index``
refreshed it; checked every 30 s). Summaries are parsed through the one
:class:`~ngstate.summary_reader.SummaryReader` this service owns, shared by all its threads.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from werkzeug.http import dump_options_header

import ngstate
from cryoet_ng.catalogue import Catalogue, CatalogueWarning, Dataset, Run
from cryoet_ng.config import Config
from cryoet_ng.layout import AnyLayout, layout_of
from cryoet_ng.store import public_url
from cryoet_ng.tree_view import INDEX_RECHECK_SECONDS, TreeView
from ngstate.api import BuiltState, NotFoundError, StateOptions
from ngstate.inputs import state_inputs
from ngstate.summary_reader import SummaryReader

# Characters neuroglancer.url_state.to_url_fragment leaves unescaped.
FRAGMENT_SAFE = "~@#$&()*!+=:;,.?/'"

RECHECK_SECONDS = 1.0

Stamp = tuple[object, ...]


class UnknownItem(LookupError):
    """No such dataset, run or tomogram (answered with 404)."""


@dataclass(frozen=True)
class EncodedState:
    built: BuiltState
    body: bytes  # compact JSON of built.state
    fragment: str  # URL-encoded JSON, to follow '#!'
    filename: str  # download name of the JSON export
    disposition: str  # its Content-Disposition header value


@dataclass
class _Entry:
    stamp: Stamp
    value: EncodedState
    checked: float


@dataclass(frozen=True)
class _RunWatch:
    run: Run
    paths: tuple[str, ...]
    stamp: Stamp
    warnings: tuple[CatalogueWarning, ...] = ()  # found reading the run (explain a 404)


def stamp_of(paths: tuple[str, ...]) -> Stamp:
    """(mtime_ns, size, inode) of every path, None for a missing one."""
    out: list[object] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def watch_list(run: Run, layout: AnyLayout) -> tuple[str, ...]:
    """Every local path whose change can change a state of ``run``: the inputs of the
    states of all its tomograms (:func:`ngstate.inputs.state_inputs` with no tomogram).
    Inputs on an object store have no mtime to stat and are left out."""
    paths = state_inputs(run, None, layout).paths()
    return tuple(str(p) for p in paths if isinstance(p, Path))


class StateService:
    """Runs read when first asked for, and built states, safe to share between threads.

    Nothing is read at start-up but the index's top file (:class:`cryoet_ng.tree_view.
    TreeView`): a run is read when a request first names it (a live scan of that run on a
    local tree, its dataset's index record on an object store), and at most ``max_runs``
    runs and ``max_entries`` states are kept (least recently used go first), so memory
    and the cost of a request do not grow with the tree.
    """

    def __init__(
        self,
        config: Config,
        max_entries: int = 512,
        recheck_seconds: float = RECHECK_SECONDS,
        max_runs: int = 4096,
    ) -> None:
        self.config = config
        self.tree = TreeView(config.data_root, config.out_root)
        self.root = self.tree.root
        self.layout = layout_of(config.out_tree)
        self.reader = SummaryReader()
        self.max_entries = max_entries
        self.max_runs = max_runs
        # Seconds a checked entry is trusted without stat-ing its watch list again: a
        # change on disk shows within this time. Halves the cost of a cached /state hit.
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._states: OrderedDict[tuple[str, str, str | None, str], _Entry] = OrderedDict()
        self._options: dict[str, StateOptions] = {}
        self._runs: OrderedDict[tuple[str, str], _RunWatch] = OrderedDict()
        self._not_runs: OrderedDict[tuple[str, str], Stamp] = OrderedDict()
        # A tree on an object store is read by the browser from the store's public URL.
        self._data_public = public_url(config.data_root)
        self._out_local = isinstance(config.out_tree, Path)

    # -- runs -----------------------------------------------------------------------
    def run(self, dataset_id: str, run_name: str) -> Run:
        """The run (cached while its watch list is unchanged); UnknownItem when none."""
        return self._watch(dataset_id, run_name).run

    def _generation(self) -> Stamp:
        """What a run read from the index depends on: the index's version (re-read when
        it changes); a live run's watch list covers it instead."""
        if self.tree.live:
            return ()
        return (self.tree.index_version,)

    def _read_run(self, dataset_id: str, run_name: str) -> _RunWatch | None:
        run, warnings = self.tree.run(dataset_id, run_name)
        if run is None:
            return None
        # Stamped just after the scan: a change landing in between is missed until the
        # next change to the run; metadata writes are atomic renames, so this is rare.
        paths = watch_list(run, self.layout)
        watch = _RunWatch(run, paths, self._generation() + stamp_of(paths), tuple(warnings))
        with self._lock:
            self._runs[(dataset_id, run_name)] = watch
            self._runs.move_to_end((dataset_id, run_name))
            while len(self._runs) > self.max_runs:
                self._runs.popitem(last=False)
        return watch

    def _absent_stamp(self, dataset_id: str, run_name: str) -> Stamp:
        """What must change before a run found missing is looked for again: its folder
        (local), or the index's version and a 30 s period (object store)."""
        if self.tree.live:
            return stamp_of((str(self.root / dataset_id / run_name),))
        return (self.tree.index_version, int(time.monotonic() // INDEX_RECHECK_SECONDS))

    def _watch(self, dataset_id: str, run_name: str) -> _RunWatch:
        key = (dataset_id, run_name)
        watch = self._runs.get(key)
        if watch is not None and self._generation() + stamp_of(watch.paths) == watch.stamp:
            return watch
        if watch is None:
            # Unknown run: look only when a folder of that name exists (local) and changed
            # since we last found it is not a run, so 404 requests cannot force scan after
            # scan.
            here = self._absent_stamp(dataset_id, run_name)
            if (self.tree.live and here[0] is None) or self._not_runs.get(key) == here:
                raise UnknownItem(f"no run {run_name!r} in dataset {dataset_id}")
        else:
            here = self._absent_stamp(dataset_id, run_name)
        watch = self._read_run(dataset_id, run_name)
        if watch is None:
            with self._lock:
                self._runs.pop(key, None)
                self._not_runs[key] = here
                while len(self._not_runs) > self.max_runs:
                    self._not_runs.popitem(last=False)
            raise UnknownItem(f"no run {run_name!r} in dataset {dataset_id}")
        return watch

    # -- states ---------------------------------------------------------------------
    def state(
        self, dataset_id: str, run_name: str, tomogram_id: str | None, data_url: str
    ) -> EncodedState:
        """The (cached) state; raises UnknownItem for an unknown run or tomogram."""
        key = (dataset_id, run_name, tomogram_id, data_url)
        now = time.monotonic()
        entry = self._states.get(key)
        if entry is not None and now - entry.checked < self.recheck_seconds:
            return entry.value
        watch = self._watch(dataset_id, run_name)
        if entry is not None and entry.stamp == watch.stamp:
            entry.checked = now
            with self._lock:
                if key in self._states:
                    self._states.move_to_end(key)
            return entry.value
        value = self._build(watch.run, tomogram_id, data_url)
        with self._lock:
            self._states[key] = _Entry(watch.stamp, value, now)
            self._states.move_to_end(key)
            while len(self._states) > self.max_entries:
                self._states.popitem(last=False)
        return value

    def catalogue_of(self, run: Run) -> Catalogue:
        """A catalogue of one run (what a state is built from), with the warnings found
        reading it."""
        dataset = Dataset(run.dataset_id, self.root / run.dataset_id, {}, {run.name: run})
        watch = self._runs.get((run.dataset_id, run.name))
        warnings = list(watch.warnings) if watch is not None and watch.run is run else []
        return Catalogue(self.root, {run.dataset_id: dataset}, warnings)

    def tree_url(self, data_url: str) -> str:
        """Where the browser reads the data tree, for a request whose ``/data`` is
        ``data_url`` (the store's public URL for a tree on an object store)."""
        return self._options_for(data_url).data_url

    def _build(self, run: Run, tomogram_id: str | None, data_url: str) -> EncodedState:
        dataset_id, run_name = run.dataset_id, run.name
        try:
            built = ngstate.build_state(
                self.catalogue_of(run),
                dataset_id,
                run_name,
                tomogram_id,
                self._options_for(data_url),
                self.reader,
            )
        except NotFoundError as exc:
            raise UnknownItem(str(exc)) from exc
        text = json.dumps(built.state, separators=(",", ":"))
        filename = f"{dataset_id}_{run_name}_{built.tomogram_id}_neuroglancer_state.json"
        return EncodedState(
            built=built,
            body=text.encode(),
            fragment=urllib.parse.quote(text, safe=FRAGMENT_SAFE),
            filename=filename,
            # werkzeug quotes (and RFC 2231-encodes) the file name.
            disposition=dump_options_header("attachment", {"filename": filename}),
        )

    def _options_for(self, data_url: str) -> StateOptions:
        """``data_url``: the configured data URL, else this server's ``/data``. A tree on an
        object store is read by the browser from the store's public URL; local outputs of
        such a tree come from this server's ``/data``."""
        options = self._options.get(data_url)
        if options is None:
            tree_url, out_url = data_url, None
            if self.config.data_url is None and self._data_public is not None:
                tree_url = self._data_public
                out_url = data_url if self._out_local else None  # else: the store's own
            options = StateOptions.from_config(self.config, data_url=tree_url, out_url=out_url)
            if len(self._options) < self.max_entries:
                self._options[data_url] = options
        return options
