"""Multi-resolution meshes (``neuroglancer_multilod_draco``, sharded) of every label.

Level of detail ``l`` is marching cubes (zmesh) on pyramid scale ``l`` (2^l isotropic
downsampling), simplified (zmesh's fast-quadric simplifier). The volume is meshed in cubic
sub-blocks of ``SUB`` voxels of that scale with one voxel of overlap, zero-padded at the
volume's faces so that surfaces close there. Each sub-block is simplified on its own with
its border vertices pinned, so neighbouring pieces still meet exactly: surfaces stay closed
and no triangle crosses a sub-block face. Eight sub-blocks make one octree node (fragment),
which is exactly the 2x2x2 partition the format requires for ``lod > 0``.

Stored-model space is level-0 voxel units where voxel ``i`` spans ``[i, i + 1)``; the info's
transform scales it to nanometres, the volume's physical space.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import DracoPy
import numpy as np
import zmesh
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

from cryoet_ng import atomic
from precompute.segmentation.volume import Scale, open_scale

SUB = 64  # sub-block edge in voxels of the LOD's scale; an octree node is 2 x SUB
NODE = 2 * SUB
QUANT_BITS = 16
QMAX = (1 << QUANT_BITS) - 1
REDUCTION = 4  # simplification target: a quarter of the marching-cubes triangles
MAX_ERROR = 1.0  # ... moving the surface by at most one voxel of the LOD's scale
DRACO_LEVEL = 7
MESH_DIR = "mesh"

# Vertices (float64, voxel-centre coordinates of the LOD's scale) and faces.
Piece = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class MeshOptions:
    num_lods: int  # wanted; fewer when the pyramid stops being isotropic


def lod_levels(scales: list[Scale], wanted: int) -> int:
    """Number of LODs: pyramid levels whose factor is (2^l, 2^l, 2^l)."""
    n = 0
    for level, scale in enumerate(scales[: max(wanted, 1)]):
        if scale.factor != (2**level,) * 3:
            break
        n += 1
    return n


def write_meshes(root: Path, scales: list[Scale], labels: list[int], options: MeshOptions) -> None:
    """Mesh every label of the volume at ``root`` into ``root/mesh`` (info + shard files)."""
    out = root / MESH_DIR
    out.mkdir()
    num_lods = lod_levels(scales, options.num_lods)
    res = scales[0].resolution
    info = {
        "@type": "neuroglancer_multilod_draco",
        "vertex_quantization_bits": QUANT_BITS,
        "transform": [res[0], 0, 0, 0, 0, res[1], 0, 0, 0, 0, res[2], 0],
        "lod_scale_multiplier": 1.0,
        "sharding": mesh_sharding(len(labels)),
    }
    # lods[l][label][node xyz] -> pieces
    lods = [_mesh_level(root, level) for level in range(num_lods)]
    blobs: dict[int, bytes] = {}
    manifest_sizes: dict[int, int] = {}
    for label in labels:
        data, manifest = _encode_label([lod.get(label, {}) for lod in lods])
        if data is None:
            continue
        blobs[label] = data + manifest
        manifest_sizes[label] = len(manifest)
    spec = ShardingSpecification.from_dict(info["sharding"])
    # The fragment data sits right before the manifest in the shard; the index points at the
    # manifest only (cloud-volume's helper takes that split as data_offset).
    for name, shard in sorted(spec.synthesize_shards(blobs, manifest_sizes).items()):
        atomic.write_bytes(out / name, shard)
    atomic.write_json(out / "info", info)


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


def _mesh_level(root: Path, level: int) -> dict[int, dict[tuple[int, int, int], list[Piece]]]:
    """Simplified marching-cubes pieces of scale ``level``, by label and octree node."""
    store = open_scale(root, level, write=False)
    nz, ny, nx = store.shape
    # Voxel centres -1 (padding) .. n (padding): n + 1 cubes, in sub-blocks of SUB cubes.
    blocks = [-(-(n + 1) // SUB) for n in (nz, ny, nx)]
    span_y, span_x = blocks[1] * SUB + 1, blocks[2] * SUB + 1
    mesher = zmesh.Mesher((1.0, 1.0, 1.0))
    out: dict[int, dict[tuple[int, int, int], list[Piece]]] = defaultdict(lambda: defaultdict(list))
    for bz in range(blocks[0]):
        # Slab of centres [bz*SUB - 1, (bz+1)*SUB - 1], zero outside the volume.
        lo = bz * SUB - 1
        slab = np.zeros((SUB + 1, span_y, span_x), np.uint32)
        z0, z1 = max(lo, 0), min(lo + SUB + 1, nz)
        if z1 > z0:
            slab[z0 - lo : z1 - lo, 1 : ny + 1, 1 : nx + 1] = store[z0:z1].read().result()
        if not slab.any():
            continue
        for by in range(blocks[1]):
            for bx in range(blocks[2]):
                block = slab[:, by * SUB : by * SUB + SUB + 1, bx * SUB : bx * SUB + SUB + 1]
                if not block.any():
                    continue
                origin = np.array([bx, by, bz]) * SUB - 1  # level index of local voxel 0
                mesher.mesh(np.asfortranarray(block.T), close=False)
                for label in mesher.ids():
                    # zmesh's own quadric simplifier keeps open-border vertices in place, so
                    # neighbouring sub-blocks still meet exactly (simplify_fqmr's
                    # preserve_border does not: tested closed-surface failures).
                    mesh = mesher.get(
                        label, normals=False, reduction_factor=REDUCTION, max_error=MAX_ERROR
                    )
                    piece = _piece(mesh, origin)
                    if piece is not None:
                        node = (bx // 2, by // 2, bz // 2)
                        out[int(label)][node].append(piece)
                mesher.clear()
    return out


def _piece(mesh: zmesh.Mesh, origin: np.ndarray) -> Piece | None:
    """Vertices of one sub-block mesh as LOD-grid coordinates (voxel centres of that scale)."""
    if len(mesh.faces) == 0:
        return None
    # Simplification may nudge a vertex past the sub-block; clamp to keep the 2x2x2 partition.
    local = np.clip(mesh.vertices.astype(np.float64), 0.0, float(SUB))
    return local + origin, mesh.faces.astype(np.uint32)


def _encode_label(
    lods: list[dict[tuple[int, int, int], list[Piece]]],
) -> tuple[bytes | None, bytes]:
    """Draco fragments (LOD 0 first, z-order) and the binary manifest of one label."""
    if not any(lods):
        return None, b""
    num_lods = len(lods)
    nodes = [set(lod) for lod in lods]
    for level in range(1, num_lods):
        # Every node needs a parent, or Neuroglancer never reaches it: add empty ones.
        nodes[level] |= {(x >> 1, y >> 1, z >> 1) for x, y, z in nodes[level - 1]}
    data: list[bytes] = []
    header = [
        np.array([NODE, NODE, NODE], "<f4").tobytes(),
        np.array([-0.5, -0.5, -0.5], "<f4").tobytes(),  # centre of padding voxel -1
        np.uint32(num_lods).astype("<u4").tobytes(),
        np.array([2.0**level for level in range(num_lods)], "<f4").tobytes(),
        # LOD l's voxel centres sit at (j + 0.5) * 2^l: shift its grid by 0.5 * (1 - 2^l).
        np.array([[0.5 * (1 - 2**level)] * 3 for level in range(num_lods)], "<f4").tobytes(),
        np.array([len(n) for n in nodes], "<u4").tobytes(),
    ]
    for level in range(num_lods):
        positions = np.array(sorted(nodes[level]), np.uint32).reshape(-1, 3)
        positions = positions[np.argsort(_morton(positions), kind="stable")]
        sizes = []
        for x, y, z in positions.tolist():
            node = (x, y, z)
            blob = _fragment(lods[level].get(node, []), np.array(node))
            data.append(blob)
            sizes.append(len(blob))
        header.append(np.ascontiguousarray(positions.T).astype("<u4").tobytes())
        header.append(np.array(sizes, "<u4").tobytes())
    return b"".join(data), b"".join(header)


def _fragment(pieces: list[Piece], node: np.ndarray) -> bytes:
    """Quantise the pieces into the node's box and Draco-encode them as one mesh."""
    if not pieces:
        return b""
    offsets = np.cumsum([0] + [len(v) for v, _ in pieces[:-1]])
    vertices = np.concatenate([v for v, _ in pieces])
    faces = np.concatenate([f + o for (_, f), o in zip(pieces, offsets, strict=True)])
    rel = (vertices - (node * NODE - 1)) / NODE
    q = np.rint(np.clip(rel, 0.0, 1.0) * QMAX).astype(np.int64)
    # Weld the copies of sub-block seam vertices (identical after quantisation).
    keys = q[:, 0] | (q[:, 1] << 16) | (q[:, 2] << 32)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    keep = (
        (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    )
    if not keep.any():
        return b""
    points = q[first].astype(np.uint32)
    return DracoPy.encode(
        points,
        faces[keep].astype(np.uint32),
        quantization_bits=QUANT_BITS,
        compression_level=DRACO_LEVEL,
    )


def _morton(positions: np.ndarray) -> np.ndarray:
    """Z-curve code (x lowest bit) of (n, 3) non-negative grid positions."""
    code = np.zeros(len(positions), np.uint64)
    pos = positions.astype(np.uint64)
    for bit in range(21):
        for axis in range(3):
            code |= ((pos[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return code
