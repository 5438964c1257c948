"""Fragments, octrees and manifests of ``neuroglancer_multilod_draco`` (see the package)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import DracoPy
import numpy as np

QUANT_BITS = 16
QMAX = (1 << QUANT_BITS) - 1
PARTITION = (QMAX + 1) // 2  # where Neuroglancer splits a fragment into its octants
DRACO_LEVEL = 7

Position = tuple[int, int, int]
Piece = tuple[np.ndarray, np.ndarray]  # vertices (n, 3), faces (m, 3)


def mesh_sharding(num_labels: int) -> dict[str, Any]:
    """One shard file; enough minishards that each index stays small."""
    minishard_bits = max(0, math.ceil(math.log2(max(num_labels, 1) / 256)))
    return {
        "@type": "neuroglancer_uint64_sharded_v1",
        "hash": "murmurhash3_x86_128",
        "preshift_bits": 0,
        "minishard_bits": minishard_bits,
        "shard_bits": 0,
        "minishard_index_encoding": "gzip",
        "data_encoding": "raw",  # Draco is already compressed; offsets must stay exact
    }


def mesh_info(scale: Sequence[float], num_labels: int) -> dict[str, Any]:
    """``info`` of a sharded multi-LOD mesh whose stored model space is scaled by ``scale``."""
    sx, sy, sz = (float(s) for s in scale)
    return {
        "@type": "neuroglancer_multilod_draco",
        "vertex_quantization_bits": QUANT_BITS,
        "transform": [sx, 0, 0, 0, 0, sy, 0, 0, 0, 0, sz, 0],
        "lod_scale_multiplier": 1.0,
        "sharding": mesh_sharding(num_labels),
    }


def encode_fragment(
    vertices: np.ndarray,
    faces: np.ndarray,
    lower: np.ndarray | Sequence[float],
    size: np.ndarray | Sequence[float] | float,
    compression_level: int = DRACO_LEVEL,
    snap: bool = False,
) -> bytes:
    """Quantise ``vertices`` into the box ``[lower, lower + size]`` and Draco-encode them.

    Vertices that quantise to the same point are welded (seam copies, cut pieces) and
    triangles that collapse are dropped; an empty result is ``b""`` (an empty node).

    ``snap``: vertices within 1/20 of a step of the box's mid-planes go exactly onto
    Neuroglancer's partition point (2^15), which lies half a step above the geometric
    middle (32767.5); a vertex cut on a child boundary must not round to 32767 by float
    error, or its triangle on the upper side would count as crossing the partition.
    """
    if len(faces) == 0:
        return b""
    rel = (np.asarray(vertices, np.float64) - np.asarray(lower, np.float64)) / np.asarray(
        size, np.float64
    )
    scaled = np.clip(rel, 0.0, 1.0) * QMAX
    q = np.rint(scaled).astype(np.int64)
    if snap:
        q[np.abs(scaled - QMAX / 2) < 0.05] = PARTITION
    keys = q[:, 0] | (q[:, 1] << 16) | (q[:, 2] << 32)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    tri = inverse.reshape(-1)[np.asarray(faces, np.int64)]
    keep = non_degenerate(tri)
    if not keep.any():
        return b""
    return DracoPy.encode(
        q[first].astype(np.uint32),
        tri[keep].astype(np.uint32),
        quantization_bits=QUANT_BITS,
        compression_level=compression_level,
    )


def encode_pieces(
    pieces: Sequence[Piece],
    lower: np.ndarray | Sequence[float],
    size: np.ndarray | Sequence[float] | float,
    compression_level: int = DRACO_LEVEL,
    snap: bool = False,
) -> bytes:
    """:func:`encode_fragment` of several pieces of one node as one mesh."""
    if not pieces:
        return b""
    vertices, faces = merge(pieces)
    return encode_fragment(vertices, faces, lower, size, compression_level, snap)


def merge(pieces: Sequence[Piece]) -> Piece:
    """One vertex and face array from several pieces."""
    if len(pieces) == 1:
        return pieces[0]
    sizes = [len(v) for v, _ in pieces]
    offsets = np.cumsum([0, *sizes[:-1]]).astype(np.uint32)
    vertices = np.concatenate([v for v, _ in pieces])
    faces = np.concatenate([f + o for (_, f), o in zip(pieces, offsets, strict=True)])
    return vertices, faces


def non_degenerate(faces: np.ndarray) -> np.ndarray:
    """Mask of the (m, 3) triangles whose three vertex indices differ."""
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    return (a != b) & (b != c) & (a != c)


def morton(positions: np.ndarray) -> np.ndarray:
    """Z-curve code (x lowest bit) of (n, 3) non-negative grid positions."""
    code = np.zeros(len(positions), np.uint64)
    pos = positions.astype(np.uint64)
    for bit in range(21):
        for axis in range(3):
            code |= ((pos[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return code


def complete_octree(levels: Sequence[Iterable[Position]]) -> list[np.ndarray]:
    """Node positions per level, Z-curve sorted, with every missing parent added (empty)."""
    nodes = [set(level) for level in levels]
    for index in range(1, len(nodes)):
        nodes[index] |= {(x >> 1, y >> 1, z >> 1) for x, y, z in nodes[index - 1]}
    out = []
    for found in nodes:
        positions = np.array(sorted(found), np.uint32).reshape(-1, 3)
        out.append(positions[np.argsort(morton(positions), kind="stable")])
    return out


@dataclass(frozen=True)
class Frame:
    """What every manifest of one mesh shares: the level-0 node edge (stored-model units),
    the grid's lower corner, each level's scale and vertex offset (``(num_lods, 3)``)."""

    chunk_shape: Sequence[float]
    grid_origin: Sequence[float]
    lod_scales: Sequence[float]
    vertex_offsets: np.ndarray | Sequence[Sequence[float]]

    def manifest(
        self, positions: Sequence[np.ndarray], sizes: Sequence[Sequence[int] | np.ndarray]
    ) -> bytes:
        """One segment's binary manifest: ``positions[l]`` (k, 3) in Z-curve order (as
        :func:`complete_octree` gives them) and ``sizes[l]`` (k,) fragment bytes per level."""
        num_lods = len(positions)
        parts = [
            np.asarray(self.chunk_shape, "<f4").tobytes(),
            np.asarray(self.grid_origin, "<f4").tobytes(),
            np.uint32(num_lods).astype("<u4").tobytes(),
            np.asarray(self.lod_scales, "<f4")[:num_lods].tobytes(),
            np.asarray(self.vertex_offsets, "<f4").reshape(-1, 3)[:num_lods].tobytes(),
            np.array([len(p) for p in positions], "<u4").tobytes(),
        ]
        for level_positions, level_sizes in zip(positions, sizes, strict=True):
            parts.append(
                np.ascontiguousarray(np.asarray(level_positions).T).astype("<u4").tobytes()
            )
            parts.append(np.asarray(level_sizes, "<u4").tobytes())
        return b"".join(parts)
