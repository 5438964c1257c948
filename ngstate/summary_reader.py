"""Parsed summaries and ``info`` files, cached by (inode, size, mtime) and safe across threads.

Decoding the summaries' JSON is most of the cost of a state (about 0.35 ms per 16-cell
summary, 7 ms of 9 ms for 20 annotations, measured by benchmarks/state.py). The files are
written atomically (a new inode on every write), so a stat is enough to know a cached
parse is still current.

ngstate keeps no reader of its own: whoever builds states owns one and passes it in (the
server's state service holds the one shared by its threads; the CLI uses a fresh one), so
the library has no hidden global state.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

from cryoet_ng.failures import FailureRecord, parse_failure
from cryoet_ng.summaries import Summary

T = TypeVar("T")
MAX_ENTRIES = 4096
Stamp = tuple[int, int, int]


class SummaryReader:
    """Reads summaries, annotation ``info`` properties and failure records through a bounded
    LRU cache.

    One lock guards the cache's bookkeeping; files are read and parsed outside it, so two
    threads may parse the same file at once (both get the same value; the later insert
    wins), but no thread waits for another's I/O.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Stamp, object]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def summary(self, path: Path) -> Summary | None:
        """The summary at ``path`` (None if absent); ValueError/KeyError if malformed."""
        return self._read(path, _parse_summary)

    def info_properties(self, output: Path) -> frozenset[str]:
        """Annotation property ids in ``output/info`` (empty when absent or unreadable)."""
        try:
            return self._read(output / "info", _parse_properties) or frozenset()
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return frozenset()

    def failure(self, path: Path) -> FailureRecord | None:
        """The failure record at ``path`` (None if absent); ValueError if malformed."""
        return self._read(path, parse_failure)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _read(self, path: Path, parse: Callable[[str], T]) -> T | None:
        """``parse(text)`` of the file, or None when it does not exist; parse errors propagate.

        Each path is only ever read by one of the methods above, so the path alone is the key.
        """
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        key, stamp = str(path), (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == stamp:
                self._entries.move_to_end(key)
                return cast(T, hit[1])  # stored by this same parse function
        try:
            value = parse(path.read_text())
        except FileNotFoundError:
            return None
        with self._lock:
            self._entries[key] = (stamp, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value


def _parse_summary(text: str) -> Summary:
    return Summary.from_json(json.loads(text))


def _parse_properties(text: str) -> frozenset[str]:
    info = json.loads(text)
    return frozenset(str(p["id"]) for p in info.get("properties") or [])
