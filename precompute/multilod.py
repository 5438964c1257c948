"""Pieces of the ``neuroglancer_multilod_draco`` format shared by every mesh writer.

Masks (``precompute.segmentation.meshes``) and mesh annotations (``precompute.meshes``)
build their octrees differently but encode them the same way:

* a fragment is the part of one level of detail inside one octree node, its vertices
  quantised to 16 bits over the node's box and Draco-encoded (:func:`encode_fragment`);
* a segment's manifest lists, per level, the nodes in Z-curve order and their fragment
  sizes (:class:`Manifest`); every node needs its parent at the next level
  (:func:`complete_octree`), or Neuroglancer never reaches it;
* segments go into sharded files (``neuroglancer_uint64_sharded_v1``): the fragments sit
  right before their manifest, and the shard index points at the manifest only
  (:func:`write_shards`; cloud-volume's synthesiser takes that split as ``data_offset``).

Spec: Neuroglancer ``src/datasource/precomputed/meshes.md`` and ``sharded.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import DracoPy
import numpy as np
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

from cryoet_ng import atomic

QUANT_BITS = 16
QMAX = (1 << QUANT_BITS) - 1
PARTITION = (QMAX + 1) // 2  # where Neuroglancer splits a fragment into its octants
DRACO_LEVEL = 7

Position = tuple[int, int, int]


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
class Manifest:
    """One segment's manifest: ``positions[l]`` (k, 3) and ``sizes[l]`` (k,) per level."""

    chunk_shape: Sequence[float]
    grid_origin: Sequence[float]
    lod_scales: Sequence[float]
    vertex_offsets: np.ndarray  # (num_lods, 3)
    positions: Sequence[np.ndarray]
    sizes: Sequence[Sequence[int]]

    def to_bytes(self) -> bytes:
        num_lods = len(self.positions)
        parts = [
            np.asarray(self.chunk_shape, "<f4").tobytes(),
            np.asarray(self.grid_origin, "<f4").tobytes(),
            np.uint32(num_lods).astype("<u4").tobytes(),
            np.asarray(self.lod_scales, "<f4").tobytes(),
            np.asarray(self.vertex_offsets, "<f4").reshape(num_lods, 3).tobytes(),
            np.array([len(p) for p in self.positions], "<u4").tobytes(),
        ]
        for positions, sizes in zip(self.positions, self.sizes, strict=True):
            parts.append(np.ascontiguousarray(np.asarray(positions).T).astype("<u4").tobytes())
            parts.append(np.asarray(sizes, "<u4").tobytes())
        return b"".join(parts)


def write_shards(
    folder: Path, info: dict[str, Any], segments: dict[int, tuple[bytes, bytes]]
) -> int:
    """Write ``info`` and the shard files of ``segments`` (label -> (fragments, manifest)).

    Returns the bytes written in shard files.
    """
    spec = ShardingSpecification.from_dict(info["sharding"])
    blobs = {label: data + manifest for label, (data, manifest) in segments.items()}
    manifest_sizes = {label: len(manifest) for label, (_, manifest) in segments.items()}
    total = 0
    for name, shard in sorted(spec.synthesize_shards(blobs, manifest_sizes).items()):
        atomic.write_bytes(folder / name, shard)
        total += len(shard)
    atomic.write_json(folder / "info", info)
    return total
