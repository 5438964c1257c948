"""The sample tree's meshes: the ATP synthase model at its picks and the membrane surface."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from mesh_support import check_format, level_meshes

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.config import MeshConfig, PrecomputeConfig
from cryoet_ng.layout import output_name
from cryoet_ng.sample import SampleManifest
from cryoet_ng.sample.scene import ATP_HEAD_OFFSET
from precompute.meshes import convert_oriented_mesh, convert_triangular_mesh, template_path
from precompute.meshes.glb import read_glb


def _annotation(catalogue: Catalogue, shape: str):
    run = catalogue.run("10000", "TS_026")
    assert run is not None
    found = [(a, f) for a in run.annotations for f in a.files if f.shape == shape]
    assert len(found) == 1
    return run, *found[0]


def test_oriented_particles_get_their_model(sample_root: Path, tmp_path: Path) -> None:
    catalogue = Catalogue.scan(sample_root)
    run, annotation, file = _annotation(catalogue, "OrientedPoint")
    entry = next(f for f in annotation.metadata["files"] if f["shape"] == "OrientedPoint")
    assert entry["mesh_source_path"] == file.relative_path.replace(".ndjson", "_template.glb")
    model = template_path(annotation.metadata, annotation.metadata_path, sample_root, MeshConfig())
    assert model is not None and model.read_bytes()[:4] == b"glTF"
    template = read_glb(model, 10**6)
    # Å, the pick at the head's centre, the stalk and ring up the particle's +z.
    spacing = annotation.voxel_spacing
    assert np.abs(template.vertices[:, :2]).max() == pytest.approx(3 * spacing, rel=0.05)
    assert template.vertices[:, 2].max() > ATP_HEAD_OFFSET * spacing
    out = tmp_path / output_name(annotation, "OrientedMesh")
    tomogram = run.tomograms[0]
    summary = convert_oriented_mesh(
        model,
        file.path,
        out,
        voxel_spacing=spacing,
        options=MeshConfig(),
        points=PrecomputeConfig(),
        label=annotation.object_name,
        volume_size_xyz=tomogram.size_xyz,
    )
    assert out.name.endswith("_orientedmesh")
    picks = [json.loads(line) for line in file.path.read_text().splitlines()]
    assert summary.count == len(picks) == annotation.metadata["object_count"]
    levels = level_meshes(out)
    # The whole model at every pick (slivers that quantise to nothing aside).
    area = trimesh.Trimesh(template.vertices, template.faces, process=False).area
    nm = spacing / 10
    assert levels[0].area == pytest.approx(len(picks) * area * (nm / spacing) ** 2, rel=1e-3)
    # Every head sits on its pick: each pick has model vertices within the head radius.
    centres = np.array([[p["location"][a] for a in "xyz"] for p in picks]) * nm
    near = np.linalg.norm(levels[0].vertices[None] - centres[:, None], axis=2) < 3.2 * nm
    assert near.any(axis=1).all()
    check_format(out)


def test_membrane_surface_lies_on_the_membrane(
    sample_root: Path, sample_manifest: SampleManifest, tmp_path: Path
) -> None:
    catalogue = Catalogue.scan(sample_root)
    run, annotation, file = _annotation(catalogue, "TriangularMesh")
    assert file.format == "glb" and file.path.name.endswith("_triangularmesh.glb")
    assert annotation.metadata["object_count"] == 1
    out = tmp_path / output_name(annotation, "TriangularMesh")
    tomogram = run.tomograms[0]
    summary = convert_triangular_mesh(
        file.path,
        out,
        voxel_spacing=annotation.voxel_spacing,
        options=MeshConfig(),
        label=annotation.object_name,
        volume_size_xyz=tomogram.size_xyz,
    )
    assert summary.kind == "mesh" and summary.extra["closed"] is False
    # Inside the tomogram, and on the thin membrane mask of the same tree.
    glb = read_glb(file.path, 10**6)
    assert glb.vertices.min() >= -1e-6
    assert np.all(glb.vertices.max(axis=0) <= np.asarray(tomogram.size_xyz) - 1 + 1e-6)
    import tensorstore as ts

    membrane = next(a for a in run.annotations if a.stem.startswith("membrain_seg"))
    zarr = next(f.path for f in membrane.files if f.format == "zarr")
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(zarr / "0")}}
    mask = ts.open(spec).result().read().result()
    ijk = np.clip(np.rint(glb.vertices).astype(int), 0, np.asarray(mask.shape[::-1]) - 1)
    assert mask[ijk[:, 2], ijk[:, 1], ijk[:, 0]].mean() > 0.95
    check_format(out)


@pytest.mark.parametrize("policy", ["auto+author", "auto"])
def test_the_surface_mesh_is_shown_by_default(
    sample_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str
) -> None:
    """Precomputed by the CLI, run 10000/TS_026 opens with its membrane surface shown beside
    the MemBrain-seg mask of the same membrane (a surface and a voxel mask are two objects:
    the surface's description names it), under the default policy and under the automatic
    choice alone, and ``--explain`` says why."""
    import cryoet_ng_cli as cli

    config = tmp_path / "config.yaml"
    config.write_text(f"data_root: {sample_copy}\nselection:\n  policy: {policy}\n")
    args = ["--runs", "TS_026", "--datasets", "10000", "--workers", "1"]
    assert cli.main(["precompute", str(sample_copy), *args]) == 0
    capsys.readouterr()
    state_args = ["state", str(sample_copy), "10000", "TS_026", "--config", str(config)]
    assert cli.main(state_args) == 0
    state = json.loads(capsys.readouterr().out)
    (surface,) = [
        layer
        for layer in state["layers"]
        if str(layer["source"]["url"]).endswith("-plasma_membrane_surface-1.0_triangularmesh")
    ]
    assert surface["type"] == "segmentation" and surface["visible"] is True
    mask = next(x for x in state["layers"] if "membrain_seg_prediction" in x["source"]["url"])
    name = surface["name"]
    assert name.startswith("107 membrane · ") and mask["name"].startswith("105 membrane · ")
    assert cli.main([*state_args, "--explain"]) == 0
    rows = [x.split(maxsplit=1) for x in capsys.readouterr().out.splitlines()]
    ((shown, text),) = [row for row in rows if len(row) == 2 and row[1].startswith(name)]
    assert shown == "on"
    why = text[len(name) :].strip()
    if policy == "auto":
        # The automatic choice alone: the curator-recommended surface wins over the mask,
        # which would hide it (and the particles) inside its shell.
        assert why.startswith("shown: curator-recommended; kept over ")
        assert mask["name"] in why
    else:
        assert why == ("shown: author's is_visualization_default true; the automatic choice agrees")
