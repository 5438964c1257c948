"""Mesh outputs through ``cryoet-ng precompute``: the sample's particle models and membrane
surface land where the Layout says, with their summaries; bad templates fail alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
import yaml
from mesh_support import check_format, level_meshes
from test_ngstate_tree import assert_roundtrip

from cryoet_ng.catalogue import Annotation, Catalogue, Run
from cryoet_ng.layout import Layout, summary_path
from cryoet_ng.summaries import read_summary
from cryoet_ng_cli import main as cli
from precompute.job_types import REGISTRY, OrientedMeshes, TriangularMeshes

RUN = ("10000", "TS_026")


def _precompute(tree: Path, out: Path, *extra: str) -> tuple[int, dict]:
    report = out.parent / f"{out.name}-report.json"
    argv = ["precompute", str(tree), "--out", str(out), "--report", str(report)]
    code = cli([*argv, "--runs", RUN[1], "--workers", "1", *extra])
    return code, json.loads(report.read_text())


def _mesh_annotations(tree: Path) -> tuple[Run, Annotation, Annotation]:
    run = Catalogue.scan(tree, [RUN[0]]).run(*RUN)
    assert run is not None
    oriented = next(a for a in run.annotations if any(f.mesh_source_path for f in a.files))
    surface = next(a for a in run.annotations if any(f.shape == "TriangularMesh" for f in a.files))
    return run, oriented, surface


def _set_model(oriented: Annotation, model: str | None) -> str:
    """Set (None: remove) the OrientedPoint entry's mesh_source_path; return the old one."""
    meta_path = oriented.metadata_path
    assert isinstance(meta_path, Path)
    meta = json.loads(meta_path.read_text())
    entry = next(f for f in meta["files"] if f["shape"] == "OrientedPoint")
    old = entry.pop("mesh_source_path", None)
    if model is not None:
        entry["mesh_source_path"] = model
    meta_path.write_text(json.dumps(meta))
    return str(old)


@pytest.fixture(scope="module")
def converted(copy_sample, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    base = tmp_path_factory.mktemp("meshjobs")
    tree = copy_sample(base / "data")
    out = base / "out"
    code, report = _precompute(tree, out)
    assert code == 0, report["failures"]
    return tree, out, report


def test_precompute_writes_both_mesh_outputs_and_summaries(
    converted: tuple[Path, Path, dict],
) -> None:
    tree, out, report = converted
    run, oriented, surface = _mesh_annotations(tree)
    layout = Layout(out)
    particles = layout.oriented_mesh_output(run, oriented)
    membrane = layout.annotation_output(run, surface, "TriangularMesh")
    assert particles.name == f"{oriented.id}-{oriented.stem}_orientedmesh"
    assert membrane.name == f"{surface.id}-{surface.stem}_triangularmesh"
    # ... beside the bare oriented-point output of the same file, as the portal writes them.
    assert layout.annotation_output(run, oriented, "OrientedPoint").is_dir()
    done = {Path(j["output"]).name for j in report["jobs"] if j["status"] == "done"}
    assert {particles.name, membrane.name} <= done

    picks = oriented.metadata["object_count"]
    summary = read_summary(summary_path(particles))
    assert summary.kind == "mesh" and summary.count == picks > 0
    assert summary.extra["template"] == next(f.mesh_source_path for f in oriented.files)
    assert summary.fingerprint and summary.occupancy is not None
    assert summary.extra["source"].endswith("_orientedpoint.ndjson")
    levels = level_meshes(particles)
    counts = [len(m.faces) for m in levels]
    # Non-increasing (the sample's few picks fit the first-view budget at full detail; the
    # levels themselves are tested in test_meshes_oriented).
    assert counts == sorted(counts, reverse=True) and counts[0] > 0
    # Every pick has model vertices around it (within the head radius, 3 voxels).
    ndjson = next(f.path for f in oriented.files if f.shape == "OrientedPoint")
    assert isinstance(ndjson, Path)
    nm = oriented.voxel_spacing / 10
    xyz = [[r["location"][a] for a in "xyz"] for r in map(json.loads, ndjson.open())]
    centres = np.asarray(xyz) * nm
    near = np.linalg.norm(levels[0].vertices[None] - centres[:, None], axis=2) < 3.2 * nm
    assert near.any(axis=1).all()
    check_format(particles)

    summary = read_summary(summary_path(membrane))
    assert summary.kind == "mesh" and summary.count == 1
    assert summary.extra["source"].endswith("_triangularmesh.glb")
    check_format(membrane)


def test_second_run_skips_the_meshes(converted: tuple[Path, Path, dict]) -> None:
    tree, out, _ = converted
    code, report = _precompute(tree, out)
    assert code == 0
    mesh_jobs = [j for j in report["jobs"] if "mesh" in Path(j["output"]).name]
    assert len(mesh_jobs) == 2 and {j["status"] for j in mesh_jobs} == {"skipped"}


def test_discovery_needs_a_particle_model(sample_root: Path, tmp_path: Path) -> None:
    jobs = REGISTRY.jobs(Catalogue.scan(sample_root), tmp_path)
    oriented = [j for j in jobs if isinstance(j, OrientedMeshes)]
    # Only the annotation with mesh_source_path: other oriented picks keep their lines only.
    assert len(oriented) == 1 and oriented[0].template is not None
    assert len([j for j in jobs if isinstance(j, TriangularMeshes)]) == 1
    assert all(j.template in j.sources() for j in oriented)


@pytest.mark.parametrize(
    ("model", "named", "words"),
    [
        ("../../../../../../outside.glb", ".json", "leaves the data root"),
        ("{folder}/missing.glb", "missing.glb", "cannot read"),
        ("{folder}/not-a-mesh.glb", "not-a-mesh.glb", "not a glb"),
    ],
)
def test_bad_template_fails_alone(
    copy_sample, tmp_path: Path, model: str, named: str, words: str
) -> None:
    tree = copy_sample(tmp_path / "data")
    run, oriented, _ = _mesh_annotations(tree)
    declared = _set_model(oriented, None)
    folder = declared.rsplit("/", 1)[0]
    (tree / folder / "not-a-mesh.glb").write_text("solid nothing\n")
    _set_model(oriented, model.format(folder=folder))
    out = tmp_path / "out"
    code, report = _precompute(tree, out)
    assert code != 0
    (failure,) = report["failures"]
    assert named in failure["file"] and words in failure["message"]
    assert failure.get("traceback") is None  # a clear error, not a crash
    assert not Layout(out).oriented_mesh_output(run, oriented).exists()
    # The batch went on: everything else of the run is done, the bare picks included.
    assert report["counts"]["done"] == report["counts"]["total"] - 1
    assert Layout(out).annotation_output(run, oriented, "OrientedPoint").is_dir()


def test_template_with_zero_picks_fails(copy_sample, tmp_path: Path) -> None:
    tree = copy_sample(tmp_path / "data")
    run, oriented, _ = _mesh_annotations(tree)
    ndjson = next(f.path for f in oriented.files if f.shape == "OrientedPoint")
    assert isinstance(ndjson, Path)
    ndjson.write_text("")
    code, report = _precompute(tree, tmp_path / "out")
    assert code != 0
    messages = {Path(f["file"]).name: f["message"] for f in report["failures"]}
    assert "no picks" in messages[ndjson.name]
    assert not Layout(tmp_path / "out").oriented_mesh_output(run, oriented).exists()


def test_state_of_the_precomputed_sample_shows_the_meshes(
    converted: tuple[Path, Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    tree, out, _ = converted
    _, oriented, surface = _mesh_annotations(tree)
    args = ["state", str(tree), *RUN, "--out", str(out)]
    assert cli(args) == 0
    state = json.loads(capsys.readouterr().out)
    assert_roundtrip(state)  # neuroglancer.ViewerState
    layers = {
        layer["source"]["url"].rstrip("/").rsplit("/", 1)[-1]: layer
        for layer in state["layers"]
        if isinstance(layer["source"], dict)
    }
    models = layers[f"{oriented.id}-{oriented.stem}_orientedmesh"]
    picks = layers[f"{oriented.id}-{oriented.stem}_orientedpoint"]
    membrane = layers[f"{surface.id}-{surface.stem}_triangularmesh"]
    assert models["name"].startswith(f"{oriented.id} {oriented.object_name} particle models")
    assert models["visible"] is True and picks["visible"] is False
    assert models["source"]["url"].endswith("_orientedmesh")
    assert membrane["type"] == "segmentation" and membrane["source"]["url"].endswith(
        "_triangularmesh"
    )
    assert cli([*args, "--explain"]) == 0
    explained = capsys.readouterr().out
    assert "drawn as particle models by" in explained


@pytest.mark.parametrize("match", ["object_name", "object_id"])
def test_configured_template_by_object(copy_sample, tmp_path: Path, match: str) -> None:
    """Without mesh_source_path, a meshes.templates rule (YAML) gives the particle model."""
    tree = copy_sample(tmp_path / "data")
    run, oriented, _ = _mesh_annotations(tree)
    model = _set_model(oriented, None)
    value = oriented.object_name.upper() if match == "object_name" else oriented.object_id
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data_root": str(tree), "meshes": {"templates": [{match: value, "path": model}]}}
        )
    )
    out = tmp_path / "out"
    code, report = _precompute(tree, out, "--config", str(config))
    assert code == 0, report["failures"]
    particles = Layout(out).oriented_mesh_output(run, oriented)
    summary = read_summary(summary_path(particles))
    assert summary is not None and summary.count == oriented.metadata["object_count"]
    assert summary.extra["template"] == model
    check_format(particles)
    # Without the rule, the picks have no model and no job.
    code, report = _precompute(tree, tmp_path / "bare")
    assert code == 0
    assert not Layout(tmp_path / "bare").oriented_mesh_output(run, oriented).exists()


def test_changed_model_redoes_only_the_particle_models(copy_sample, tmp_path: Path) -> None:
    tree = copy_sample(tmp_path / "data")
    out = tmp_path / "out"
    code, _ = _precompute(tree, out)
    assert code == 0
    run, oriented, _ = _mesh_annotations(tree)
    model = next(f.mesh_source for f in oriented.files if f.mesh_source is not None)
    assert isinstance(model, Path)
    scene = trimesh.load(model, file_type="glb", force="scene")
    scene.apply_transform(trimesh.transformations.scale_matrix(0.5))  # a smaller model
    model.write_bytes(scene.export(file_type="glb"))
    code, report = _precompute(tree, out)
    assert code == 0
    done = [Path(j["output"]).name for j in report["jobs"] if j["status"] == "done"]
    assert done == [Layout(out).oriented_mesh_output(run, oriented).name]
