"""Helpers for the mesh tests: write inputs, and read outputs back with cloud-volume/DracoPy."""

from __future__ import annotations

import json
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
