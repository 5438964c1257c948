"""TriangularMesh glb -> precomputed multi-LOD mesh, read back by cloud-volume and DracoPy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
import trimesh
from mesh_support import NM, SPACING, check_format, level_meshes, nearest, write_glb

from cryoet_ng.config import MeshConfig
from cryoet_ng.summaries import Summary
from precompute.meshes import convert_triangular_mesh
from precompute.meshes.occupancy import cell_volumes

OPTIONS = MeshConfig(node_faces=400)  # a 5,120-triangle mesh gets 3 levels
VOLUME = (100, 110, 70)  # tomogram size in voxels (x, y, z)
EXTENT = tuple(n * SPACING * 1e-10 for n in VOLUME)


def sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=20.0)
    mesh.apply_translation([40.3, 50.7, 30.2])
    return mesh


def convert(tmp_path: Path, mesh: trimesh.Trimesh, **kwargs) -> tuple[Path, Summary]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = write_glb(tmp_path / "membrane-1.0_triangularmesh.glb", mesh.vertices, mesh.faces)
    out = tmp_path / "out" / "105-membrane-1.0_triangularmesh"
    summary = convert_triangular_mesh(
        source,
        out,
        voxel_spacing=SPACING,
        options=kwargs.pop("options", OPTIONS),
        label="membrane",
        description="cell membrane",
        volume_size_xyz=VOLUME,
        extent_m=EXTENT,
        **kwargs,
    )
    return out, summary


def test_levels_read_back_by_cloud_volume(tmp_path: Path) -> None:
    mesh = sphere()
    out, _ = convert(tmp_path, mesh)
    levels = level_meshes(out)
    assert len(levels) == 3
    faces = [len(level.faces) for level in levels]
    assert faces[0] >= len(mesh.faces) and faces[0] > faces[1] > faces[2] > 0
    # Finest level: the glb's own vertices, in nm at the annotation's spacing (the portal's
    # units: one glb unit = one voxel), within the 16-bit quantisation of a level-0 node.
    tol = 40.0 / 2**16 * NM * 1.5
    finest = levels[0]
    assert nearest(mesh.vertices * NM, finest.vertices).max() < tol
    # Cutting at node planes only splits triangles: same surface, same enclosed volume.
    assert finest.area == pytest.approx(mesh.area * NM**2, rel=1e-4)
    assert finest.volume == pytest.approx(mesh.volume * NM**3, rel=1e-4)
    for coarse in levels[1:]:
        assert coarse.area == pytest.approx(mesh.area * NM**2, rel=0.05)
        np.testing.assert_allclose(coarse.bounds, mesh.bounds * NM, atol=1.0 * NM)
    check_format(out)


def test_folder_layout_and_metadata(tmp_path: Path) -> None:
    out, _ = convert(tmp_path, sphere())
    info = json.loads((out / "info").read_text())
    assert info["type"] == "segmentation" and info["mesh"] == "mesh"
    assert info["scales"][0]["resolution"] == [NM] * 3
    assert info["scales"][0]["size"] == list(VOLUME)
    mesh_info = json.loads((out / "mesh" / "info").read_text())
    assert mesh_info["@type"] == "neuroglancer_multilod_draco"
    assert mesh_info["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    assert mesh_info["transform"] == [NM, 0, 0, 0, 0, NM, 0, 0, 0, 0, NM, 0]
    props = json.loads((out / "segment_properties" / "info").read_text())
    assert props["inline"]["ids"] == ["1"]
    values = {p["id"]: p["values"] for p in props["inline"]["properties"]}
    assert values == {"label": ["membrane"], "description": ["cell membrane"]}
    # The voxel scale holds no chunks: tensorstore reads background, with no error.
    volume = ts.open(
        {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": str(out)}}
    ).result()
    assert volume.shape[:3] == VOLUME
    assert not volume[:, :, :].read().result().any()
    assert not list(out.parent.glob(".tmp-*"))


def test_summary_encloses_the_sphere(tmp_path: Path) -> None:
    mesh = sphere()
    _, summary = convert(tmp_path, mesh)
    m = SPACING * 1e-10
    assert summary.kind == "mesh" and summary.count == 1
    assert summary.extra["closed"] is True
    np.testing.assert_allclose(summary.bounds, np.asarray(mesh.bounds) * m, rtol=1e-6)  # float32
    occupancy = summary.occupancy
    assert occupancy is not None and occupancy.measure == "fraction"
    volumes = cell_volumes(occupancy.grid, EXTENT)
    enclosed = float(np.sum(occupancy.values * volumes))
    assert enclosed == pytest.approx(mesh.volume * m**3, rel=2e-3)  # values have 4 decimals
    # Per cell, against sampling the ball the icosphere approximates (an independent method).
    g = occupancy.grid
    sub = (np.arange(8) + 0.5) / 8
    offsets = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), -1).reshape(-1, 3)
    corners = g.centres() - g.cell_size / 2
    samples = (corners[:, None, :] + offsets[None] * g.cell_size) / m
    inside = np.linalg.norm(samples - mesh.bounds.mean(axis=0), axis=2) < 20.0
    inside &= np.all(samples < np.asarray(VOLUME), axis=2)
    expected = inside.mean(axis=1) * (g.cell_size**3) / np.maximum(volumes, 1e-300)
    np.testing.assert_allclose(occupancy.values, np.clip(expected, 0, 1), atol=0.05)


def test_open_sheet_is_a_shell(tmp_path: Path) -> None:
    # A curved open sheet (a membrane patch): encloses nothing, still occupies its cells.
    x, y = np.meshgrid(np.linspace(5, 90, 60), np.linspace(5, 100, 60), indexing="ij")
    z = 30 + 10 * np.sin(x / 15.0)
    vertices = np.stack([x.ravel(), y.ravel(), z.ravel()], 1)
    i = np.arange(59)[:, None] * 60 + np.arange(59)[None, :]
    quads = np.stack([i, i + 60, i + 61, i + 1], -1).reshape(-1, 4)
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    sheet = trimesh.Trimesh(vertices, faces, process=False)
    out, summary = convert(tmp_path, sheet)
    assert summary.extra["closed"] is False
    levels = level_meshes(out)
    assert levels[0].area == pytest.approx(sheet.area * NM**2, rel=1e-4)
    occupancy = summary.occupancy
    assert occupancy is not None
    covered = occupancy.values > 0
    assert 0 < covered.sum() < occupancy.grid.size and occupancy.values.max() < 0.2
    check_format(out)


def test_output_is_deterministic(tmp_path: Path) -> None:
    mesh = sphere()
    first, _ = convert(tmp_path / "a", mesh, threads=2)
    again, _ = convert(tmp_path / "b", mesh, threads=1)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
