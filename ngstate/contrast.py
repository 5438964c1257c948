"""The tomogram's contrast limits, from the best source there is, never Neuroglancer's [0, 1].

1. the tomogram summary written by the precompute (``precompute/tomogram.py``): 2-D limits
   from a sample of the full-resolution level, 3-D limits from the background component of
   a Gaussian mixture;
2. else statistics computed on the fly by a provider the caller passes (the server passes
   one that runs the precompute's computation and writes the summary, so it happens once);
3. else the MRC twin's header (``dmean``, ``rms``, ``dmin``, ``dmax``: 1 KB read, cached by
   file identity): 2-D ``dmean +/- 3 rms``, 3-D ``[dmean - 3 rms, dmean - rms]``, the dense
   side of the whole-volume distribution;
4. else nothing: the image layer says so in the state's messages.

Neuroglancer's own default for float32 data is the range [0, 1], which on a tomogram of
mean 0 and rms 1 shows half the voxels black and half white.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryoet_ng.catalogue import Run, Tomogram
from cryoet_ng.store import TreePath
from ngstate.layers import ContrastLimits

StatsProvider = Callable[[Run, Tomogram], dict[str, Any] | None]


@dataclass(frozen=True)
class Contrast:
    contrast_2d: ContrastLimits
    contrast_3d: ContrastLimits
    source: str  # "summary", "computed", "MRC header"


def limits(value: Any) -> ContrastLimits | None:
    """``[lo, hi]`` as limits, or None when it is not two increasing numbers."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return ContrastLimits(lo, hi) if hi > lo else None


def from_stats(stats: dict[str, Any] | None, source: str) -> Contrast | None:
    stats = stats or {}
    two_d = limits(stats.get("contrast_2d"))
    if two_d is None:
        return None
    return Contrast(two_d, limits(stats.get("contrast_3d")) or two_d, source)


def from_mrc_header(path: TreePath | None) -> Contrast | None:
    """Limits from an MRC file's header statistics, or None if absent, unusable or not a
    local file (a header on an object store is not worth a request while building a state)."""
    if not isinstance(path, Path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    header = _header_stats(str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if header is None:
        return None
    dmin, dmax, dmean, rms = header
    if not rms > 0 or not dmax > dmin:
        return None
    two_d = ContrastLimits(max(dmean - 3 * rms, dmin), min(dmean + 3 * rms, dmax))
    three_d = ContrastLimits(max(dmean - 3 * rms, dmin), max(dmean - rms, dmin + 1e-6 * rms))
    return Contrast(two_d, three_d, "MRC header")


@functools.lru_cache(maxsize=256)
def _header_stats(
    path: str, inode: int, size: int, mtime_ns: int
) -> tuple[float, float, float, float] | None:
    """(dmin, dmax, dmean, rms) of an MRC2014 header; the identity arguments key the cache."""
    del inode, size, mtime_ns
    try:
        with open(path, "rb") as f:
            raw = f.read(1024)
    except OSError:
        return None
    if len(raw) < 1024 or raw[208:212] != b"MAP ":
        return None
    # Machine stamp: 0x44 0x44 (or 0x44 0x41) little-endian, 0x11 0x11 big-endian.
    order = ">" if raw[212] == 0x11 else "<"
    dmin, dmax, dmean = struct.unpack_from(order + "3f", raw, 76)
    (rms,) = struct.unpack_from(order + "f", raw, 216)
    return dmin, dmax, dmean, rms


def tomogram_contrast(
    stats: dict[str, Any] | None,
    run: Run,
    tomogram: Tomogram,
    provider: StatsProvider | None,
) -> tuple[Contrast | None, str | None]:
    """The tomogram's contrast and, when the summary did not give it, a note saying why."""
    found = from_stats(stats, "summary")
    if found is not None:
        return found, None
    if provider is not None:
        found = from_stats(provider(run, tomogram), "computed")
        if found is not None:
            return found, f"tomogram {tomogram.id}: no statistics summary; computed on the fly"
    found = from_mrc_header(tomogram.mrc_path)
    if found is not None:
        return found, f"tomogram {tomogram.id}: no statistics summary; contrast from the MRC header"
    return None, (
        f"tomogram {tomogram.id}: no statistics summary and no MRC header statistics "
        "(precompute not run?); contrast left to the viewer"
    )
