"""The tomogram's contrast limits, from the best source there is, never Neuroglancer's [0, 1].

1. the tomogram summary written by the precompute (``precompute/tomogram.py``): 2-D limits
   from a sample of the full-resolution level, 3-D limits from the background component of
   a Gaussian mixture;
2. else the MRC twin's header (``dmean``, ``rms``, ``dmin``, ``dmax``): 2-D
   ``dmean +/- 3 rms``, 3-D ``[dmean - 3 rms, dmean - rms]``, the dense side of the
   whole-volume distribution. Locally a 1 KB read cached by file identity; on a store one
   ranged GET of 1 KB, cached by URL for the process (the portal publishes an MRC twin of
   every tomogram, so a tree on S3 without summaries still opens with usable contrast);
3. else nothing: the image layer says so in the state's messages.

Statistics are not computed while a state is built: the precompute's (a sample of the
full-resolution level and the coarsest level, tens of MB on the portal's tomograms) is a
batch job's work, not a request's.

Neuroglancer's own default for float32 data is the range [0, 1], which on a tomogram of
mean 0 and rms 1 shows half the voxels black and half white.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryoet_ng.catalogue import Tomogram
from cryoet_ng.store import Location, TreePath
from ngstate.layers import ContrastLimits


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
    """Limits from an MRC file's header statistics, or None if absent or unusable."""
    if path is None:
        return None
    if isinstance(path, Path):
        try:
            st = os.stat(path)
        except OSError:
            return None
        header = _header_stats(str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    else:
        header = _remote_header_stats(path)
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
            return _parse_header(f.read(1024))
    except OSError:
        return None


_Header = tuple[float, float, float, float]


def _remote_header_stats(path: Location) -> _Header | None:
    """The header of an MRC file on a store: one ranged GET, the answer kept by URL (a
    tomogram's file is replaced, not edited, on the portal; a restart forgets). A failed
    request is not kept (``lru_cache`` does not keep exceptions): the next state asks again."""
    try:
        return _remote_header(path.root, path.key)
    except OSError:  # StoreError: missing, unreachable, shorter than a header
        return None


@functools.lru_cache(maxsize=4096)  # 4,096 x ~200 bytes: under 1 MB; thread-safe
def _remote_header(root: str, key: str) -> _Header | None:
    return _parse_header(Location(root, key).read_prefix(1024))


def _parse_header(raw: bytes) -> _Header | None:
    if len(raw) < 1024 or raw[208:212] != b"MAP ":
        return None
    # Machine stamp: 0x44 0x44 (or 0x44 0x41) little-endian, 0x11 0x11 big-endian.
    order = ">" if raw[212] == 0x11 else "<"
    dmin, dmax, dmean = struct.unpack_from(order + "3f", raw, 76)
    (rms,) = struct.unpack_from(order + "f", raw, 216)
    return dmin, dmax, dmean, rms


def tomogram_contrast(
    stats: dict[str, Any] | None, tomogram: Tomogram
) -> tuple[Contrast | None, str | None]:
    """The tomogram's contrast and, when the summary did not give it, a note saying why."""
    found = from_stats(stats, "summary")
    if found is not None:
        return found, None
    found = from_mrc_header(tomogram.mrc_path)
    if found is not None:
        return found, f"tomogram {tomogram.id}: no statistics summary; contrast from the MRC header"
    return None, (
        f"tomogram {tomogram.id}: no statistics summary and no MRC header statistics "
        "(precompute not run?); contrast left to the viewer"
    )
