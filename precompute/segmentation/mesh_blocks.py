"""Mesh one octree node of one pyramid scale: marching cubes, simplification, Draco.

A node is ``NODE``^3 voxels of its scale, meshed as 2 x 2 x 2 sub-blocks of ``SUB``^3 cubes.
Each sub-block is read with one voxel of overlap on the low side (voxel centres
``origin .. origin + SUB``), zero outside the volume so that surfaces close at its faces, and
meshed on its own (zmesh, ``close=False``: surfaces stay open at the sub-block faces). Each
piece is simplified with its open-border vertices locked (meshoptimizer), so neighbouring
sub-blocks and nodes still meet vertex for vertex: the welded surface is watertight.

Everything a node needs is read here, from the written scale, so nodes are independent tasks
(:mod:`.parallel`) and memory per task is one node's block (129^3 labels) plus its meshes.

Stored-model coordinates are level-0 voxel units, voxel ``i`` spanning ``[i, i + 1)``; a
fragment is quantised to its node's box (see :func:`fragment`).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import DracoPy
import meshoptimizer
import numpy as np
import tensorstore as ts
import zmesh
from meshoptimizer._loader import lib as meshoptimizer_library

from precompute.segmentation.volume import open_scale

SUB = 64  # sub-block edge in voxels of the LOD's scale; an octree node is 2 x SUB
NODE = 2 * SUB
QUANT_BITS = 16
QMAX = (1 << QUANT_BITS) - 1
REDUCTION = 4  # simplification target: a quarter of the marching-cubes triangles
MAX_ERROR = 1.0  # ... moving the surface by at most one voxel of the LOD's scale
DRACO_LEVEL = 7

# meshopt_simplifyWithAttributes through the bindings' library: their Python function for it
# declares no argument types (ctypes then cannot pass the float error), so declare them here.
_SIMPLIFY = meshoptimizer_library.meshopt_simplifyWithAttributes
_SIMPLIFY.argtypes = [
    *[ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t],  # destination, indices, count
    *[ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t],  # positions, count, stride
    *[ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t],  # attributes
    ctypes.c_void_p,  # vertex_lock
    *[ctypes.c_size_t, ctypes.c_float, ctypes.c_uint, ctypes.c_void_p],  # target, error, ...
]
_SIMPLIFY.restype = ctypes.c_size_t
_ERROR_ABSOLUTE = meshoptimizer.SIMPLIFY_ERROR_ABSOLUTE  # target_error in voxels, not relative

Node = tuple[int, int, int]  # x, y, z
# Vertices (float64, voxel-centre coordinates of the LOD's scale) and faces.
Piece = tuple[np.ndarray, np.ndarray]
Fragment = tuple[int, int, Node, bytes]  # label, lod, node, Draco bytes


def mesh_nodes(root: Path, lod: int, nodes: list[Node]) -> list[Fragment]:
    """Draco fragments of every label in ``nodes`` of scale ``lod`` of the volume at ``root``."""
    store = open_scale(root, lod, write=False)
    shape = tuple(int(n) for n in store.shape)  # z, y, x
    mesher = zmesh.Mesher((1.0, 1.0, 1.0))
    out: list[Fragment] = []
    for node in nodes:
        block = _read_block(store, shape, node)
        if block is None:
            continue
        pieces: dict[int, list[Piece]] = {}
        for dz in range(2):
            for dy in range(2):
                for dx in range(2):
                    sub = block[dz * SUB :, dy * SUB :, dx * SUB :][: SUB + 1, : SUB + 1, : SUB + 1]
                    if not sub.any():
                        continue
                    origin = np.array(node) * NODE + np.array([dx, dy, dz]) * SUB - 1
                    _mesh_sub_block(mesher, sub, origin, pieces)
        for label in sorted(pieces):
            blob = fragment(pieces[label], np.array(node))
            if blob:
                out.append((label, lod, node, blob))
    return out


def _read_block(store: ts.TensorStore, shape: tuple[int, ...], node: Node) -> np.ndarray | None:
    """Labels at voxel centres ``node * NODE - 1 .. node * NODE + NODE`` (z, y, x), zero
    outside the volume; None when all zero."""
    lo = [n * NODE - 1 for n in node[::-1]]  # z, y, x
    block = np.zeros((NODE + 1,) * 3, np.uint32)
    src = tuple(slice(max(a, 0), min(a + NODE + 1, n)) for a, n in zip(lo, shape, strict=True))
    if any(s.start >= s.stop for s in src):
        return None
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo, strict=True))
    block[dst] = store[src].read().result()
    return block if block.any() else None


def _mesh_sub_block(
    mesher: zmesh.Mesher, sub: np.ndarray, origin: np.ndarray, pieces: dict[int, list[Piece]]
) -> None:
    mesher.mesh(np.asfortranarray(sub.T), close=False)
    for label in mesher.ids():
        mesh = mesher.get(label, normals=False, reduction_factor=0)
        piece = simplify(mesh.vertices, mesh.faces, origin)
        if piece is not None:
            pieces.setdefault(int(label), []).append(piece)
    mesher.clear()


def simplify(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray) -> Piece | None:
    """Quadric simplification to 1/REDUCTION of the triangles; the seam strip is kept.

    Locked: the vertices on the sub-block's faces (its open border) and every vertex of a
    triangle touching them, so the triangles along the border stay exactly as marching cubes
    made them. Locking the border alone is not enough: collapsing a free neighbour of two
    border vertices joins them by a new edge in the face plane, and when the sub-block on
    the other side does the same, that edge has four triangles (a pinch, found by the
    watertightness tests). meshoptimizer instead of zmesh's own simplifier: 0.5 against 3.6
    us per input triangle (measured on a 64-slice slab of the 20-label benchmark mask: 1.50 M
    triangles, both reduced to ~1/4), collapses only ever keep an existing vertex, and it
    runs without the GIL.
    """
    if len(faces) == 0:
        return None
    positions = np.ascontiguousarray(vertices, np.float32)
    indices = np.ascontiguousarray(faces, np.uint32).reshape(-1)
    on_face = ((positions == 0) | (positions == SUB)).any(axis=1)
    lock = np.zeros(len(positions), np.uint8)
    lock[faces[on_face[faces].any(axis=1)]] = 1
    kept = np.empty_like(indices)
    count = _SIMPLIFY(
        kept.ctypes.data,
        indices.ctypes.data,
        len(indices),
        positions.ctypes.data,
        len(positions),
        12,  # stride of an xyz float32 vertex
        None,  # no attributes
        0,
        None,
        0,
        lock.ctypes.data,
        len(indices) // REDUCTION,
        MAX_ERROR,
        _ERROR_ABSOLUTE,
        None,
    )
    simplified = kept[:count].reshape(-1, 3)
    if count == 0 or not _closed_inside(simplified, on_face):
        # meshoptimizer does not check the link condition: rarely (a few pieces in a
        # thousand) a collapse pinches two sheets into one edge. Keep marching cubes' piece.
        simplified = faces.astype(np.uint32)
    used, remapped = np.unique(simplified, return_inverse=True)
    local = positions[used].astype(np.float64)
    return local + origin, remapped.reshape(-1, 3).astype(np.uint32)


def _closed_inside(faces: np.ndarray, on_face: np.ndarray) -> bool:
    """Every edge has two triangles, except edges on the sub-block's faces (one)."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    keys = edges[:, 0].astype(np.uint64) << np.uint64(32) | edges[:, 1].astype(np.uint64)
    keys.sort()
    new = np.r_[True, keys[1:] != keys[:-1]]
    counts = np.diff(np.r_[np.flatnonzero(new), len(keys)])
    if (counts > 2).any():
        return False
    single = keys[new][counts == 1]
    ends = np.stack([single >> np.uint64(32), single & np.uint64(0xFFFFFFFF)], 1).astype(np.int64)
    return bool(on_face[ends].all())


def fragment(pieces: list[Piece], node: np.ndarray) -> bytes:
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
