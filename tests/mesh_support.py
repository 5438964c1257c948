"""Helpers for the mesh tests: write inputs, and read outputs back with cloud-volume/DracoPy."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import DracoPy
import numpy as np
import trimesh
from cloudvolume import CloudVolume

SPACING = 13.48  # Å per voxel
NM = SPACING / 10


def write_glb(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    path.write_bytes(mesh.export(file_type="glb"))
    return path


def write_picks(path: Path, xyz: np.ndarray, rotations: np.ndarray) -> Path:
    lines = [
        json.dumps(
            {
                "type": "orientedPoint",
                "location": dict(zip("xyz", p.tolist(), strict=True)),
                "xyz_rotation_matrix": r.tolist(),
            }
        )
        for p, r in zip(xyz, rotations, strict=True)
    ]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Proper rotations from random unit quaternions."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def level_meshes(folder: Path) -> list[trimesh.Trimesh]:
    """Segment 1 at every level of detail, as cloud-volume reads it (vertices in nm)."""
    cv = CloudVolume(f"precomputed://file://{folder}", progress=False)
    manifest = cv.mesh.get_manifest(1)
    out = []
    for lod in range(manifest.num_lods):
        mesh = cv.mesh.get(1, lod=lod)[1]
        out.append(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False))
    return out


@dataclass(frozen=True)
class Fragment:
    lod: int
    position: np.ndarray  # node position in the level's grid
    points: np.ndarray  # quantised integer vertex positions as stored
    faces: np.ndarray


def fragments(folder: Path) -> tuple[object, list[Fragment]]:
    """Every non-empty fragment of segment 1, decoded by DracoPy, and cloud-volume's manifest."""
    cv = CloudVolume(f"precomputed://file://{folder}", progress=False)
    manifest = cv.mesh.get_manifest(1)
    sizes = [np.asarray(s, np.int64) for s in manifest.fragment_offsets]
    total = int(sum(s.sum() for s in sizes))
    shard = (folder / manifest.path).read_bytes()  # e.g. "mesh/0.shard"
    data = shard[manifest.shard_offset - total : manifest.shard_offset]
    out = []
    offset = 0
    for lod, lod_sizes in enumerate(sizes):
        for index, size in enumerate(lod_sizes.tolist()):
            blob = data[offset : offset + size]
            offset += size
            if size:
                mesh = DracoPy.decode(blob)
                out.append(
                    Fragment(
                        lod,
                        np.asarray(manifest.fragment_positions[lod][index]),
                        np.asarray(mesh.points),
                        np.asarray(mesh.faces).reshape(-1, 3),
                    )
                )
    return manifest, out


def nearest(points: np.ndarray, candidates: np.ndarray, block: int = 2048) -> np.ndarray:
    """Distance from each point to the closest candidate (brute force, in blocks)."""
    out = np.empty(len(points))
    for start in range(0, len(points), block):
        chunk = points[start : start + block]
        d = np.linalg.norm(chunk[:, None, :] - candidates[None, :, :], axis=2)
        out[start : start + block] = d.min(axis=1)
    return out


def raw_glb(vertices: np.ndarray, indices: np.ndarray) -> bytes:
    """A minimal binary glTF with one triangle primitive, built by hand, so that inputs
    trimesh would refuse to export (no faces, a face index out of range) can be made."""
    pos = np.asarray(vertices, "<f4").tobytes()
    idx = np.asarray(indices, "<u4").tobytes()
    blob = pos + idx
    doc = {
        "asset": {"version": "2.0"},
        "buffers": [{"byteLength": len(blob)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(pos)},
            {"buffer": 0, "byteOffset": len(pos), "byteLength": len(idx)},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(vertices), "type": "VEC3"},
            {"bufferView": 1, "componentType": 5125, "count": len(indices), "type": "SCALAR"},
        ],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "mode": 4}]}],
        "nodes": [{"mesh": 0}],
        "scenes": [{"nodes": [0]}],
        "scene": 0,
    }
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text
    body += struct.pack("<II", len(blob), 0x004E4942) + blob
    return b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body


def zorder_key(position: np.ndarray) -> int:
    """Interleaved bits, x lowest: the order Neuroglancer requires of a level's nodes."""
    key = 0
    for bit in range(21):
        for axis in range(3):
            key |= ((int(position[axis]) >> bit) & 1) << (3 * bit + axis)
    return key


def partition_ok(points: np.ndarray, faces: np.ndarray) -> bool:
    """Neuroglancer's rule for a fragment above level 0 (neuroglancer_draco.cc): every
    triangle's vertices share an octant, where a vertex at 2^15 counts on both sides."""
    mid = 1 << 15
    masks = np.full(len(points), 0xFF, np.int64)
    for axis, (low, high) in enumerate(((0x55, 0xAA), (0x33, 0xCC), (0x0F, 0xF0))):
        masks = np.where(points[:, axis] < mid, masks & low, masks)
        masks = np.where(points[:, axis] > mid, masks & high, masks)
    shared = masks[faces[:, 0]] & masks[faces[:, 1]] & masks[faces[:, 2]]
    return bool(np.all(shared != 0))


def check_format(folder: Path) -> list[Fragment]:
    """What Neuroglancer requires of the octree, checked on the stored bytes."""
    manifest, frags = fragments(folder)
    positions = manifest.fragment_positions
    for lod in range(manifest.num_lods):
        keys = [zorder_key(p) for p in np.asarray(positions[lod]).reshape(-1, 3)]
        assert keys == sorted(set(keys)), f"level {lod} nodes not in strict Z-curve order"
        if lod + 1 < manifest.num_lods:
            parents = {tuple(p) for p in np.asarray(positions[lod + 1]).reshape(-1, 3).tolist()}
            for p in np.asarray(positions[lod]).reshape(-1, 3).tolist():
                assert (p[0] >> 1, p[1] >> 1, p[2] >> 1) in parents, f"orphan node {p} at {lod}"
    scales = np.asarray(manifest.lod_scales)
    assert np.all(scales > 0) and np.all(np.diff(scales) >= 0)
    for frag in frags:
        assert frag.points.min() >= 0 and frag.points.max() <= (1 << 16) - 1
        if frag.lod > 0:
            assert partition_ok(frag.points, frag.faces), f"crossing triangle at {frag.lod}"
    return frags
