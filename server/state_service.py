"""Viewer states cached per (dataset, run, tomogram, data URL), rebuilt when inputs change.

What a state depends on is declared once, by :func:`ngstate.inputs.state_inputs`. For each
run we keep a *watch list*: those inputs for every tomogram of the run (the run's metadata
files, the folders whose entries change when an annotation, tomogram or voxel spacing is
added or removed, the NeuroglancerPrecompute folders, which atomic writes rename into, and
each output with its summary and ``info``). A request stats that list (a few dozen
``os.stat`` calls, tens of microseconds) and reuses the cached state when nothing moved;
otherwise the run's dataset is re-scanned into a new catalogue snapshot and the state
rebuilt. Summaries are parsed through the one :class:`~ngstate.summary_reader.SummaryReader`
this service owns, shared by all its threads.
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
from cryoet_ng.catalogue import Catalogue, Run
from cryoet_ng.config import Config
from cryoet_ng.layout import Layout
from ngstate.api import BuiltState, NotFoundError, StateOptions
from ngstate.inputs import state_inputs
from ngstate.summary_reader import SummaryReader

# Characters neuroglancer.url_state.to_url_fragment leaves unescaped.
FRAGMENT_SAFE = "~@#$&()*!+=:;,.?/'"

RECHECK_SECONDS = 1.0

Stamp = tuple[tuple[int, int, int] | None, ...]


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
    paths: tuple[str, ...]
    stamp: Stamp


def stamp_of(paths: tuple[str, ...]) -> Stamp:
    """(mtime_ns, size, inode) of every path, None for a missing one."""
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def watch_list(run: Run, layout: Layout) -> tuple[str, ...]:
    """Every local path whose change can change a state of ``run``: the inputs of the
    states of all its tomograms (:func:`ngstate.inputs.state_inputs` with no tomogram).
    Inputs on an object store have no mtime to stat and are left out."""
    paths = state_inputs(run, None, layout).paths()
    return tuple(str(p) for p in paths if isinstance(p, Path))


class StateService:
    """Catalogue snapshots and built states, safe to share between threads."""

    def __init__(
        self,
        config: Config,
        max_entries: int = 512,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self.config = config
        self.root = config.data_root.resolve()
        self.layout = Layout(config.out_root.resolve())
        self.reader = SummaryReader()
        self.max_entries = max_entries
        # Seconds a checked entry is trusted without stat-ing its watch list again: a
        # change on disk shows within this time. Halves the cost of a cached /state hit.
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._states: OrderedDict[tuple[str, str, str | None, str], _Entry] = OrderedDict()
        self._options: dict[str, StateOptions] = {}
        self._catalogue = Catalogue(self.root)
        self._runs: dict[tuple[str, str], _RunWatch] = {}
        self._tree: tuple[tuple[str, ...], Stamp] = ((), ())
        self._not_runs: dict[tuple[str, str], Stamp] = {}
        self._rescan_all()

    # -- catalogue ------------------------------------------------------------------
    def catalogue(self) -> Catalogue:
        """The whole tree; re-scanned when the root or a dataset folder changed."""
        paths, stamp = self._tree
        if stamp_of(paths) != stamp:
            self._rescan_all()
        return self._catalogue

    def _rescan_all(self) -> None:
        fresh = Catalogue.scan(self.root)
        tree = (str(self.root), *(str(d.path) for d in fresh.datasets.values()))
        with self._lock:
            self._catalogue = fresh
            self._runs = {(r.dataset_id, r.name): self._run_watch(r) for r in fresh.runs()}
            self._tree = (tree, stamp_of(tree))

    def _rescan_dataset(self, dataset_id: str) -> None:
        fresh = Catalogue.scan(self.root, datasets=[dataset_id])
        with self._lock:
            old = self._catalogue
            datasets = {k: v for k, v in old.datasets.items() if k != dataset_id}
            datasets.update(fresh.datasets)
            folder = self.root / dataset_id
            warnings = [w for w in old.warnings if not w.path.is_relative_to(folder)]
            # A new snapshot object: requests holding the old one keep a consistent view.
            self._catalogue = Catalogue(
                old.root, dict(sorted(datasets.items())), warnings + fresh.warnings
            )
            runs = {k: v for k, v in self._runs.items() if k[0] != dataset_id}
            for run in fresh.runs():
                runs[(run.dataset_id, run.name)] = self._run_watch(run)
            self._runs = runs

    def _run_watch(self, run: Run) -> _RunWatch:
        # Stamped just after the scan: a change landing in between is missed until the
        # next change to the run; metadata writes are atomic renames, so this is rare.
        paths = watch_list(run, self.layout)
        return _RunWatch(paths, stamp_of(paths))

    def _watch(self, dataset_id: str, run_name: str) -> _RunWatch:
        key = (dataset_id, run_name)
        watch = self._runs.get(key)
        if watch is not None and stamp_of(watch.paths) == watch.stamp:
            return watch
        run_dir = self.root / dataset_id / run_name
        if watch is None:
            # Unknown run: re-scan only when a folder of that name exists and changed since
            # we last found it is not a run, so 404 requests cannot force scan after scan.
            here = stamp_of((str(run_dir),))
            if here[0] is None or self._not_runs.get(key) == here:
                raise UnknownItem(f"no run {run_name!r} in dataset {dataset_id}")
            self._rescan_dataset(dataset_id)
            watch = self._runs.get(key)
            if watch is None:
                with self._lock:
                    self._not_runs[key] = here
                raise UnknownItem(f"no run {run_name!r} in dataset {dataset_id}")
            return watch
        self._rescan_dataset(dataset_id)
        watch = self._runs.get(key)
        if watch is None:
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
        value = self._build(dataset_id, run_name, tomogram_id, data_url)
        with self._lock:
            self._states[key] = _Entry(watch.stamp, value, now)
            self._states.move_to_end(key)
            while len(self._states) > self.max_entries:
                self._states.popitem(last=False)
        return value

    def _build(
        self, dataset_id: str, run_name: str, tomogram_id: str | None, data_url: str
    ) -> EncodedState:
        try:
            built = ngstate.build_state(
                self._catalogue,
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
        options = self._options.get(data_url)
        if options is None:
            options = StateOptions.from_config(self.config, data_url=data_url)
            if len(self._options) < self.max_entries:
                self._options[data_url] = options
        return options
