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

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmesh

from precompute.multilod import Manifest, complete_octree, encode_fragment, mesh_info, write_shards
from precompute.segmentation.volume import Scale, open_scale

SUB = 64  # sub-block edge in voxels of the LOD's scale; an octree node is 2 x SUB
NODE = 2 * SUB
REDUCTION = 4  # simplification target: a quarter of the marching-cubes triangles
MAX_ERROR = 1.0  # ... moving the surface by at most one voxel of the LOD's scale
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
    info = mesh_info(scales[0].resolution, len(labels))
    # lods[l][label][node xyz] -> pieces
    lods = [_mesh_level(root, level) for level in range(num_lods)]
    segments: dict[int, tuple[bytes, bytes]] = {}
    for label in labels:
        encoded = _encode_label([lod.get(label, {}) for lod in lods])
        if encoded is not None:
            segments[label] = encoded
    write_shards(out, info, segments)


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
) -> tuple[bytes, bytes] | None:
    """Draco fragments (LOD 0 first, z-order) and the binary manifest of one label."""
    if not any(lods):
        return None
    num_lods = len(lods)
    positions = complete_octree(lods)
    data: list[bytes] = []
    sizes = []
    for level in range(num_lods):
        level_sizes = []
        for node in map(tuple, positions[level].tolist()):
            blob = _fragment(lods[level].get(node, []), np.array(node))
            data.append(blob)
            level_sizes.append(len(blob))
        sizes.append(level_sizes)
    manifest = Manifest(
        chunk_shape=[NODE] * 3,
        grid_origin=[-0.5] * 3,  # centre of padding voxel -1
        lod_scales=[2.0**level for level in range(num_lods)],
        # LOD l's voxel centres sit at (j + 0.5) * 2^l: shift its grid by 0.5 * (1 - 2^l).
        vertex_offsets=np.array([[0.5 * (1 - 2**level)] * 3 for level in range(num_lods)]),
        positions=positions,
        sizes=sizes,
    )
    return b"".join(data), manifest.to_bytes()


def _fragment(pieces: list[Piece], node: np.ndarray) -> bytes:
    """Quantise the pieces into the node's box and Draco-encode them as one mesh."""
    if not pieces:
        return b""
    offsets = np.cumsum([0] + [len(v) for v, _ in pieces[:-1]])
    vertices = np.concatenate([v for v, _ in pieces])
    faces = np.concatenate([f + o for (_, f), o in zip(pieces, offsets, strict=True)])
    return encode_fragment(vertices, faces, node * NODE - 1, NODE)
