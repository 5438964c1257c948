"""Particle models at oriented picks: the portal encoder's placement, read back by cloud-volume."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from mesh_support import (
    NM,
    SPACING,
    check_format,
    fragments,
    level_meshes,
    nearest,
    random_rotations,
    write_glb,
    write_picks,
)

from cryoet_ng.config import MeshConfig, PrecomputeConfig
from cryoet_ng.summaries import Summary
from precompute.meshes import convert_oriented_mesh
from precompute.meshes.occupancy import cell_volumes

VOLUME = (200, 180, 90)
EXTENT = tuple(n * SPACING * 1e-10 for n in VOLUME)
PICKS = 30


def template() -> trimesh.Trimesh:
    """An off-centre, elongated particle model in Å (so rotation and centre both matter)."""
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=60.0)  # 320 triangles
    mesh.vertices *= [1.0, 0.7, 1.6]
    mesh.apply_translation([25.0, -10.0, 40.0])
    return mesh


def picks(rng: np.random.Generator, n: int = PICKS) -> tuple[np.ndarray, np.ndarray]:
    xyz = rng.uniform([5, 5, 5], np.asarray(VOLUME) - 6, (n, 3)).round(2)
    return xyz, random_rotations(n, rng)


def convert(
    tmp_path: Path, model: trimesh.Trimesh, xyz: np.ndarray, rot: np.ndarray, **options
) -> tuple[Path, Summary]:
    glb = write_glb(tmp_path / "atp.glb", model.vertices, model.faces)
    ndjson = write_picks(tmp_path / "atp-1.0_orientedpoint.ndjson", xyz, rot)
    out = tmp_path / "out" / "102-atp-1.0_orientedmesh"
    config = MeshConfig(**{"node_faces": 2000, "first_view_faces": 40 * PICKS, **options})
    summary = convert_oriented_mesh(
        glb,
        ndjson,
        out,
        voxel_spacing=SPACING,
        options=config,
        points=PrecomputeConfig(),
        label="ATP synthase",
        volume_size_xyz=VOLUME,
        extent_m=EXTENT,
    )
    return out, summary


def portal_placement(model: trimesh.Trimesh, xyz: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """What the portal's encode_oriented_mesh computes, step by step with trimesh: Å -> nm
    (x 0.1), then / data_scale_in_nm (= voxel spacing / 10), then [R | t] per pick."""
    scaled = model.copy().apply_scale(0.1).apply_scale(1.0 / (SPACING * 0.1))
    placed = []
    for location, rotation in zip(xyz, rot, strict=True):
        transform = np.eye(4)
        transform[:3, :3] = rotation
        transform[:3, 3] = location
        placed.append(scaled.copy().apply_transform(transform).vertices)
    return np.concatenate(placed)


def test_finest_level_is_the_model_at_every_pick(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    model = template()
    xyz, rot = picks(rng)
    out, _ = convert(tmp_path, model, xyz, rot)
    levels = level_meshes(out)
    assert len(levels) >= 3
    faces = [len(level.faces) for level in levels]
    assert faces[0] >= PICKS * len(model.faces)
    assert all(a > b for a, b in itertools.pairwise(faces)), faces
    manifest, _ = fragments(out)
    tol = float(manifest.chunk_shape[0]) / 2**16 * NM * 1.5  # 16-bit steps of a level-0 node
    expected = portal_placement(model, xyz, rot) * NM
    assert nearest(expected, levels[0].vertices).max() < tol
    # Every output vertex lies on some placed model: cutting adds points on its triangles.
    assert nearest(levels[0].vertices, expected).max() < 30.0 * NM
    assert levels[0].area == pytest.approx(PICKS * model.area * (NM / SPACING) ** 2, rel=1e-4)
    # Coarser levels: the same models, simplified, at the same places.
    for coarse in levels[1:]:
        assert coarse.area == pytest.approx(levels[0].area, rel=0.25)
        np.testing.assert_allclose(coarse.bounds, levels[0].bounds, atol=8 * NM)
    check_format(out)


def test_levels_and_first_view_budget(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    model = template()
    xyz, rot = picks(rng)
    out, summary = convert(tmp_path, model, xyz, rot, lods=6)
    triangles = summary.extra["triangles"]
    # The coarsest level is the model simplified to first_view_faces / picks (40), the finest
    # the whole model (320): triangles fall level by level.
    assert triangles[-1] <= 1.3 * 40 * PICKS
    assert triangles == sorted(triangles, reverse=True)
    assert summary.extra["first_view_bytes"] < summary.extra["bytes"] / 2
    levels = level_meshes(out)
    assert len(levels[-1].faces) <= 1.3 * 40 * PICKS


def test_finest_level_simplified_when_over_the_budget(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    model = template()
    xyz, rot = picks(rng)
    _, summary = convert(tmp_path, model, xyz, rot, instance_faces=100 * PICKS)
    assert summary.extra["triangles"][0] <= 1.3 * 100 * PICKS  # about 100 of 320 per pick


def test_summary(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    model = template()
    xyz, rot = picks(rng)
    out, summary = convert(tmp_path, model, xyz, rot)
    m = SPACING * 1e-10
    assert summary.kind == "mesh" and summary.count == PICKS
    expected = portal_placement(model, xyz, rot)
    np.testing.assert_allclose(summary.bounds[0], expected.min(axis=0) * m, rtol=1e-5)
    np.testing.assert_allclose(summary.bounds[1], expected.max(axis=0) * m, rtol=1e-5)
    occupancy = summary.occupancy
    assert occupancy is not None and occupancy.measure == "fraction"
    assert summary.extra["closed"] is True
    enclosed = float(np.sum(occupancy.values * cell_volumes(occupancy.grid, EXTENT)))
    assert enclosed == pytest.approx(PICKS * model.volume * 1e-30, rel=2e-2)
    cells = occupancy.grid.cell_of(xyz * m)
    assert set(np.flatnonzero(occupancy.values).tolist()) == set(cells.tolist())
    props = json.loads((out / "segment_properties" / "info").read_text())
    assert props["inline"]["properties"][0]["values"] == ["ATP synthase"]
