"""Multiscale ``compressed_segmentation`` volume: scales, sharding, mode downsampling.

Scale ``k + 1`` is the 2x2x2 (or 2x2x1 once an axis is small) *mode* downsampling of scale
``k``: the most frequent label of each block, ties going to the smallest label. This is
tensorstore's ``"mode"`` rule. The levels are written brick by brick (:mod:`.pyramid`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from cryoet_ng.vectors import triple

CHUNK = 64  # voxels per chunk edge: Neuroglancer's usual 2-D/3-D view granularity
TOP = 64  # stop adding scales once every dimension is at most this
MIN_HALVED = 32  # an axis of this size or less is no longer halved (anisotropic levels)
BLOCK = [8, 8, 8]  # compressed_segmentation block size
MAX_CHUNKS_PER_SHARD_BITS = 9  # 512 chunks (2^27 voxels) per shard file
MINISHARD_PRESHIFT_BITS = 3  # 2x2x2 neighbouring chunks share a minishard

Slab = np.ndarray  # z, y, x


@dataclass(frozen=True)
class Scale:
    """One level of the pyramid (all tuples x, y, z)."""

    key: str
    factor: tuple[int, int, int]  # relative to level 0
    size: tuple[int, int, int]
    resolution: tuple[float, float, float]  # nm
    chunk: tuple[int, int, int]
    sharding: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "key": self.key,
            "size": list(self.size),
            "resolution": list(self.resolution),
            "voxel_offset": [0, 0, 0],
            "chunk_sizes": [list(self.chunk)],
            "encoding": "compressed_segmentation",
            "compressed_segmentation_block_size": BLOCK,
        }
        if self.sharding is not None:
            obj["sharding"] = self.sharding
        return obj


def plan_scales(
    size_xyz: tuple[int, int, int], resolution_nm: float, shard_min_voxels: int
) -> list[Scale]:
    """Levels from full resolution down to a top level no larger than TOP per axis."""
    scales: list[Scale] = []
    factor = (1, 1, 1)
    size = size_xyz
    while True:
        res = triple(resolution_nm * f for f in factor)
        chunk = triple(min(CHUNK, n) for n in size)
        voxels = math.prod(size)
        sharding = shard_spec(size, chunk) if voxels > shard_min_voxels else None
        key = "_".join(_fmt(r) for r in res)
        scales.append(Scale(key, factor, size, res, chunk, sharding))
        if max(size) <= TOP:
            return scales
        step = tuple(2 if n > MIN_HALVED else 1 for n in size)
        factor = triple(f * s for f, s in zip(factor, step, strict=True))
        size = triple(-(-n // s) for n, s in zip(size, step, strict=True))


def shard_spec(size: tuple[int, ...], chunk: tuple[int, ...]) -> dict[str, Any]:
    """Spatially contiguous shards (identity hash over compressed Morton codes)."""
    bits = sum(max(0, math.ceil(math.log2(-(-n // c)))) for n, c in zip(size, chunk, strict=True))
    per_shard = min(bits, MAX_CHUNKS_PER_SHARD_BITS)
    preshift = min(per_shard, MINISHARD_PRESHIFT_BITS)
    return {
        "@type": "neuroglancer_uint64_sharded_v1",
        "hash": "identity",
        "preshift_bits": preshift,
        "minishard_bits": per_shard - preshift,
        "shard_bits": bits - per_shard,
        "minishard_index_encoding": "gzip",
        "data_encoding": "gzip",
    }


def volume_info(scales: list[Scale], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "@type": "neuroglancer_multiscale_volume",
        "type": "segmentation",
        "data_type": "uint32",
        "num_channels": 1,
        "scales": [s.to_json() for s in scales],
        **extra,
    }


def open_scale(root: Path, index: int, *, write: bool) -> ts.TensorStore:
    """Scale ``index`` of the precomputed volume at ``root`` as a (z, y, x) view."""
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": {"driver": "file", "path": str(root)},
        "scale_index": index,
        "context": {"cache_pool": {"total_bytes_limit": 0}},
        # Write all-background chunks too: readers such as cloud-volume treat a missing chunk
        # as an error, and compressed_segmentation makes them tiny.
        "store_data_equal_to_fill_value": True,
    }
    store = ts.open(spec, open=True, read=not write, write=write).result()
    return store[..., 0].T  # precomputed is x, y, z, channel


def downsample_mode(data: Slab, step_zyx: tuple[int, int, int], binary: bool) -> Slab:
    """Mode of each ``step`` block (ties -> smallest label), edge blocks included.

    Hand-written instead of ``ts.downsample(..., "mode")``, which sorts every block. Most
    blocks of a segmentation are uniform, so a uniform test plus an exact mode on the rest
    (and a majority count for 0/1 data) is faster. Measured on one 64-slice piece of each
    benchmarks/segmentation.py case, 2x2x2, input voxels per CPU-second (all threads):
    tensorstore 415 M, ours 819 M (uint16, 20 labels); tensorstore 323 M, ours 4470 M
    (binary uint8). Identical results (tests/test_segmentation.py checks against it).
    """
    pad = [(0, n % s) for n, s in zip(data.shape, step_zyx, strict=True)]
    if any(p for _, p in pad):
        # Replicating the edge doubles every count in a partial block: the mode is unchanged.
        data = np.pad(data, pad, mode="edge")
    if step_zyx == (1, 1, 1):
        return np.ascontiguousarray(data)
    if binary:
        # Pairwise sums axis by axis (contiguous rows first); ties (count = half) go to 0.
        total = data
        for axis, step in enumerate(step_zyx):
            if step > 1:
                even, odd = _halves(total, axis)
                total = np.add(even, odd, dtype=np.uint8)
        return (total > math.prod(step_zyx) // 2).astype(data.dtype)
    # Uniform test one axis at a time: the z and y halves are whole contiguous rows, so only
    # the last (x) comparison is strided; "mixed" marks blocks that need an exact mode.
    first, mixed = data, None
    for axis, step in enumerate(step_zyx):
        if step == 1:
            continue
        even, odd = _halves(first, axis)
        differs = even != odd
        if mixed is not None:
            for half in _halves(mixed, axis):
                differs |= half
        first, mixed = even, differs
    out = np.ascontiguousarray(first)
    assert mixed is not None  # some step is > 1
    flat = np.flatnonzero(mixed)
    if flat.size:
        values = np.sort(_gather_blocks(data, step_zyx, flat, out.shape), axis=1)
        # Count of each entry's value within its sorted row; argmax picks the first (smallest).
        same = values[:, :, None] == values[:, None, :]
        best = np.argmax(same.sum(axis=2), axis=1)
        out.reshape(-1)[flat] = values[np.arange(len(best)), best]
    return out


def _halves(data: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Even and odd planes of ``data`` along ``axis`` (whose length is even)."""
    even: list[slice] = [slice(None)] * data.ndim
    odd: list[slice] = [slice(None)] * data.ndim
    even[axis], odd[axis] = slice(0, None, 2), slice(1, None, 2)
    return data[tuple(even)], data[tuple(odd)]


def _gather_blocks(
    data: Slab, step_zyx: tuple[int, int, int], flat: np.ndarray, out_shape: tuple[int, ...]
) -> np.ndarray:
    """(len(flat), block voxels) values of the blocks at flat output indices ``flat``."""
    z, y, x = np.unravel_index(flat, out_shape)
    _, ny, nx = data.shape
    corner = (z * step_zyx[0] * ny + y * step_zyx[1]) * nx + x * step_zyx[2]
    sz, sy, sx = step_zyx
    offsets = [(dz * ny + dy) * nx + dx for dz in range(sz) for dy in range(sy) for dx in range(sx)]
    return data.reshape(-1)[corner[:, None] + np.array(offsets)[None, :]]


def _fmt(value: float) -> str:
    return format(round(value, 6), "g")
