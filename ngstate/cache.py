"""Parsed summaries and info files, cached by (path, inode, size, mtime).

Decoding the summaries' JSON is most of the cost of a state (about 0.35 ms per 16-cell
summary, 7 ms of 9 ms for 20 annotations, measured by benchmarks/state.py). The files are
written atomically (a new inode on every write), so a stat is enough to know a cached
parse is still current.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryoet_ng.summaries import Summary

T = TypeVar("T")
MAX_ENTRIES = 4096
_cache: OrderedDict[tuple[str, str], tuple[tuple[int, int, int], object]] = OrderedDict()


def _cached(kind: str, path: Path, parse: Callable[[str], T]) -> T | None:
    """``parse(text)`` of the file, or None when it does not exist; parse errors propagate."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    key, stamp = (kind, str(path)), (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _cache.get(key)
    if hit is not None and hit[0] == stamp:
        _cache.move_to_end(key)
        return hit[1]  # type: ignore[return-value]
    try:
        value = parse(path.read_text())
    except FileNotFoundError:
        return None
    _cache[key] = (stamp, value)
    if len(_cache) > MAX_ENTRIES:
        _cache.popitem(last=False)
    return value


def summary(path: Path) -> Summary | None:
    """The summary at ``path`` (None if absent); ValueError/KeyError if malformed."""
    return _cached("summary", path, lambda text: Summary.from_json(json.loads(text)))


def info_properties(output: Path) -> frozenset[str]:
    """Annotation property ids in ``output/info`` (empty when absent or unreadable)."""

    def parse(text: str) -> frozenset[str]:
        info = json.loads(text)
        return frozenset(str(p["id"]) for p in info.get("properties") or [])

    try:
        return _cached("info", output / "info", parse) or frozenset()
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return frozenset()


def clear() -> None:
    _cache.clear()
