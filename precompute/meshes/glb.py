"""Read and check glb meshes (trimesh), and find a particle model's glb file.

Every problem is an :class:`~precompute.errors.InputError` naming the file: not a glb, no
triangle mesh in it, no faces, a NaN or infinite vertex, a face index out of range, more
triangles than ``meshes.max_faces``; for templates also a path that does not exist or
leaves the data root.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import trimesh

from cryoet_ng.config import MeshConfig
from precompute.errors import InputError
from precompute.multilod import non_degenerate


@dataclass(frozen=True)
class TriangleMesh:
    """Vertices (n, 3) float64 in the file's units and faces (m, 3) int64."""

    vertices: np.ndarray
    faces: np.ndarray

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)


def read_glb(path: Path, max_faces: int) -> TriangleMesh:
    """Every triangle mesh of the glb at ``path``, node transforms applied, as one mesh."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    if data[:4] != b"glTF":
        raise InputError(path, "not a glb file (no binary glTF header)")
    try:
        loaded = trimesh.load(io.BytesIO(data), file_type="glb", force="scene", process=False)
        scene = cast(trimesh.Scene, loaded)
        geometries = scene.dump(concatenate=False) if len(scene.geometry) else []
    except Exception as exc:  # trimesh raises many types for damaged files
        raise InputError(path, f"not a readable glb file: {exc}") from exc
    meshes = [g for g in geometries if isinstance(g, trimesh.Trimesh)]
    if not meshes:
        kinds = sorted({type(g).__name__ for g in geometries}) or ["nothing"]
        raise InputError(path, f"contains no triangle mesh (found {', '.join(kinds)})")
    counts = [len(m.faces) for m in meshes]
    total = sum(counts)
    if total == 0:
        raise InputError(path, "the mesh has no faces")
    if total > max_faces:
        raise InputError(
            path,
            f"the mesh has {total} triangles, more than the limit of {max_faces} "
            "(meshes.max_faces)",
        )
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    vertices = np.concatenate([np.asarray(m.vertices, np.float64) for m in meshes])
    faces = np.concatenate(
        [np.asarray(m.faces, np.int64) + o for m, o in zip(meshes, offsets, strict=True)]
    )
    bad = np.flatnonzero(~np.isfinite(vertices).all(axis=1))
    if bad.size:
        raise InputError(path, f"vertex {int(bad[0])} is NaN or infinite ({bad.size} such)")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(path, "a face refers to a vertex that does not exist")
    return weld(TriangleMesh(vertices, faces))


def weld(mesh: TriangleMesh) -> TriangleMesh:
    """Merge bit-identical vertices (glb exporters split them per face) and drop unused ones.

    Rows are grouped by one sort of a 64-bit hash of their bits (3 ms for 100,000 rows
    against 16 ms for a lexicographic sort of the three columns): the whole weld of the
    100,000-vertex benchmark surface takes 28 ms instead of 39 ms (``np.unique(axis=0)``:
    229 ms). Equal rows always share a hash, so they end up next to each other unless a
    colliding row lies between them (odds about 1e-19 per pair); such a copy would merely
    stay unmerged.
    """
    v = mesh.vertices + 0.0  # -0.0 -> 0.0: equal values, equal bits
    bits = np.ascontiguousarray(v).view(np.uint64).reshape(-1, 3)
    with np.errstate(over="ignore"):
        key = bits[:, 0] * _MIX[0] ^ bits[:, 1] * _MIX[1] ^ bits[:, 2] * _MIX[2]
        key ^= key >> np.uint64(29)
    order = np.argsort(key)
    ordered = v[order]
    new = np.r_[True, np.any(ordered[1:] != ordered[:-1], axis=1)]
    ids = np.empty(len(v), np.int64)
    ids[order] = np.cumsum(new) - 1
    faces = ids[mesh.faces]
    faces = faces[non_degenerate(faces)]
    used = np.zeros(int(new.sum()), bool)
    used[faces] = True
    compact = np.cumsum(used) - 1
    return TriangleMesh(ordered[new][used], compact[faces])


# Odd 64-bit multipliers (splitmix64's constants) spreading each coordinate's bits.
_MIX = np.array([0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB], np.uint64)


def template_path(
    metadata: dict[str, Any],
    metadata_path: Path,
    data_root: Path,
    options: MeshConfig,
) -> Path | None:
    """The particle model of an oriented-point annotation, or None when it has none.

    Order: ``mesh_source_path`` of the annotation's OrientedPoint ``files[]`` entry, else
    a top-level ``mesh_source_path`` (both bucket-relative, like every path in the
    metadata), else the first ``meshes.templates`` rule matching the object's ontology id
    or name. A named file that does not exist or leaves the data root is an InputError
    naming the metadata file (or the configured path).
    """
    root = data_root.resolve()
    entries = [
        f
        for f in metadata.get("files") or []
        if isinstance(f, dict) and f.get("shape") == "OrientedPoint" and f.get("mesh_source_path")
    ]
    relative = entries[0]["mesh_source_path"] if entries else metadata.get("mesh_source_path")
    if relative:
        if not isinstance(relative, str):
            raise InputError(metadata_path, f"mesh_source_path {relative!r} is not a path")
        path = (root / relative.lstrip("/")).resolve()
        if not path.is_relative_to(root):
            raise InputError(metadata_path, f"mesh_source_path {relative!r} leaves the data root")
        if not path.is_file():
            raise InputError(metadata_path, f"mesh_source_path {relative!r} does not exist")
        return path
    obj = metadata.get("annotation_object") or {}
    rule = options.template_for(obj.get("id"), str(obj.get("name", "")))
    if rule is None:
        return None
    path = Path(rule.path).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise InputError(path, "particle model configured in meshes.templates does not exist")
    return path
