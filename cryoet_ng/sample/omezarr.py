"""OME-Zarr (NGFF 0.4, zarr v2) pyramids and MRC twins, as the portal writes them.

Layout per spec section 3: arrays ``0``, ``1``, ``2`` in z, y, x order, every axis halved
(rounded up) per level, ``/`` dimension separator, Blosc lz4, chunks of at most 256^3,
``.zattrs`` multiscales with one ``scale`` transform per level in Å. Written with
tensorstore (the project's zarr writer); ``.zgroup``/``.zattrs`` with sorted keys so
that the same data gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import tensorstore as ts

from cryoet_ng.sample.files import write_json

LEVELS = 3
CHUNK = 256
COMPRESSOR = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}
# No fsync per chunk: the tree is published by one directory rename (see files.py).
_CONTEXT = ts.Context({"file_io_sync": False})


def _pad_even(volume: np.ndarray) -> np.ndarray:
    """Edge-replicate odd axes so 2x2x2 blocks tile the volume (ceil halving)."""
    pad = [(0, n % 2) for n in volume.shape]
    return np.pad(volume, pad, mode="edge") if any(p for _, p in pad) else volume


def _corners(volume: np.ndarray) -> list[np.ndarray]:
    """The 8 strided sub-grids of the 2x2x2 blocks. Combining them is several times
    faster than reducing a (z, 2, y, 2, x, 2) reshape, which numpy walks with poor locality."""
    v = _pad_even(volume)
    return [v[a::2, b::2, c::2] for a in (0, 1) for b in (0, 1) for c in (0, 1)]


def downsample_mean(volume: np.ndarray) -> np.ndarray:
    """2x2x2 block mean (float images)."""
    corners = _corners(volume)
    total = corners[0].astype(np.float32)
    for corner in corners[1:]:
        total += corner
    total *= np.float32(0.125)
    return total


def downsample_any(volume: np.ndarray) -> np.ndarray:
    """2x2x2 block mean > 0 for a 0/1 mask, i.e. max-pooling (portal SegmentationMask rule)."""
    corners = _corners(volume)
    out = corners[0].copy()
    for corner in corners[1:]:
        np.maximum(out, corner, out=out)
    return out


def downsample_nearest(volume: np.ndarray) -> np.ndarray:
    """Stride-2 nearest neighbour (portal InstanceSegmentationMask rule); ceil sizes."""
    return volume[::2, ::2, ::2]


@dataclass(frozen=True)
class Pyramid:
    """One OME-Zarr image: its levels (z, y, x arrays) and physical spacing."""

    levels: tuple[np.ndarray, ...]
    voxel_spacing: float

    @classmethod
    def build(
        cls, volume: np.ndarray, voxel_spacing: float, down: Callable[[np.ndarray], np.ndarray]
    ) -> Pyramid:
        levels = [volume]
        for _ in range(LEVELS - 1):
            levels.append(down(levels[-1]))
        return cls(tuple(levels), voxel_spacing)


def multiscales(voxel_spacing: float, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The NGFF 0.4 ``.zattrs`` document for a 3-level isotropic pyramid in Å."""
    entry: dict[str, Any] = {
        "axes": [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"],
        "datasets": [
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"scale": [voxel_spacing * 2**level] * 3, "type": "scale"}
                ],
            }
            for level in range(LEVELS)
        ],
        "name": "/",
        "version": "0.4",
    }
    if metadata:
        entry["metadata"] = metadata
    return {"multiscales": [entry]}


def _zarr_dtype(dtype: np.dtype) -> str:
    return np.dtype(dtype).newbyteorder("<").str if dtype.itemsize > 1 else dtype.str


def write_array(path: Path, array: np.ndarray) -> None:
    """One zarr v2 array with the portal's chunking and codec."""
    spec = {
        "driver": "zarr",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "shape": list(array.shape),
            "chunks": [min(CHUNK, n) for n in array.shape],
            "dtype": _zarr_dtype(array.dtype),
            "compressor": COMPRESSOR,
            "dimension_separator": "/",
            "fill_value": 0,
            "filters": None,
            "order": "C",
        },
        "create": True,
        "delete_existing": True,
    }
    store = ts.open(spec, context=_CONTEXT).result()
    store.write(array).result()


def write_omezarr_group(
    path: Path, voxel_spacing: float, metadata: dict[str, Any] | None = None
) -> None:
    """``path`` (a ``.zarr`` folder) with ``.zgroup`` and ``.zattrs`` only: no arrays.

    Alone, a header-only image for metadata-only trees (the catalogue and ngstate never read
    voxels; a benchmark's 960x928x500 tomogram would otherwise cost 1.8 GB of zeros).
    """
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / ".zgroup", {"zarr_format": 2})
    write_json(path / ".zattrs", multiscales(voxel_spacing, metadata))


def write_omezarr(path: Path, pyramid: Pyramid, metadata: dict[str, Any] | None = None) -> None:
    """``path`` (a ``.zarr`` folder) with ``.zgroup``, ``.zattrs`` and arrays 0..2."""
    write_omezarr_group(path, pyramid.voxel_spacing, metadata)
    for level, array in enumerate(pyramid.levels):
        write_array(path / str(level), array)


def write_mrc(path: Path, volume: np.ndarray, voxel_spacing: float, label: str) -> None:
    """Level-0 MRC twin: voxel size = spacing, cella = spacing x shape, dmean/rms set.

    mrcfile stamps the creation time into label 0; it is replaced by a fixed label so
    that the same seed gives the same bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = voxel_spacing
        mrc.update_header_stats()
        mrc.header.label[0] = f"{label:<80.80}"
        mrc.header.nlabl = 1
