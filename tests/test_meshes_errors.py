"""Bad mesh input: an InputError naming the file, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from mesh_support import SPACING, random_rotations, raw_glb, write_glb, write_picks

from cryoet_ng.config import MeshConfig, PrecomputeConfig, TemplateRule
from precompute.errors import InputError
from precompute.meshes import convert_oriented_mesh, convert_triangular_mesh, template_path

OPTIONS = MeshConfig(max_faces=1000)


def ico() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=2, radius=10.0)  # 320 triangles


def bad_glbs(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, expected message fragment)."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, tuple[bytes, str]] = {
        "text": (b'{"meshes": []}', "not a glb file"),
        "truncated": (b"glTF" + bytes(20), "not a readable glb"),
        "points": (
            trimesh.Scene(trimesh.PointCloud(np.ones((5, 3)))).export(file_type="glb"),
            "no triangle mesh (found PointCloud)",
        ),
        "no_faces": (raw_glb(np.eye(3), np.zeros(0, np.uint32)), "has no faces"),
        "bad_index": (raw_glb(np.eye(3), np.array([0, 1, 9])), "vertex that does not exist"),
        "too_big": (trimesh.creation.icosphere(4).export(file_type="glb"), "limit of 1000"),
    }
    nan = ico()
    vertices = nan.vertices.copy()
    vertices[7] = np.nan
    cases["nan"] = (
        trimesh.Trimesh(vertices, nan.faces, process=False).export(file_type="glb"),
        "NaN or infinite",
    )
    out = {}
    for name, (data, message) in cases.items():
        path = folder / f"{name}.glb"
        path.write_bytes(data)
        out[name] = (path, message)
    return out


CASES = ["text", "truncated", "points", "no_faces", "bad_index", "too_big", "nan"]


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not out.parent.exists() or not list(out.parent.glob(".tmp-*"))


@pytest.mark.parametrize("case", CASES)
def test_bad_triangular_mesh(tmp_path: Path, case: str) -> None:
    path, message = bad_glbs(tmp_path / "in")[case]
    out = tmp_path / "out" / "100-x-1.0_triangularmesh"
    with pytest.raises(InputError) as info:
        convert_triangular_mesh(path, out, voxel_spacing=SPACING, options=OPTIONS, label="x")
    assert info.value.path == path and str(path) in str(info.value)
    assert message in str(info.value)
    assert_nothing_written(out)


def refused_oriented(tmp_path: Path, template: Path, picks: Path) -> InputError:
    """The InputError of converting ``template`` at ``picks``; checks nothing was written."""
    out = tmp_path / "out" / "100-x-1.0_orientedmesh"
    with pytest.raises(InputError) as info:
        convert_oriented_mesh(
            template,
            picks,
            out,
            voxel_spacing=SPACING,
            options=OPTIONS,
            points=PrecomputeConfig(),
            label="x",
        )
    assert_nothing_written(out)
    return info.value


@pytest.mark.parametrize("case", CASES)
def test_bad_template(tmp_path: Path, case: str) -> None:
    path, message = bad_glbs(tmp_path / "in")[case]
    rng = np.random.default_rng(0)
    xyz, rotations = rng.uniform(5, 50, (4, 3)), random_rotations(4, rng)
    error = refused_oriented(tmp_path, path, write_picks(tmp_path / "p.ndjson", xyz, rotations))
    assert error.path == path and message in str(error)


def test_template_but_no_picks(tmp_path: Path) -> None:
    glb = write_glb(tmp_path / "t.glb", ico().vertices, ico().faces)
    empty = tmp_path / "p.ndjson"
    empty.write_text("")
    error = refused_oriented(tmp_path, glb, empty)
    assert error.path == empty and "no picks" in str(error)


def test_bad_picks_name_the_line(tmp_path: Path) -> None:
    glb = write_glb(tmp_path / "t.glb", ico().vertices, ico().faces)
    rng = np.random.default_rng(1)
    rotations = random_rotations(3, rng)
    rotations[1] *= 2.0  # not a rotation
    ndjson = write_picks(tmp_path / "p.ndjson", rng.uniform(5, 50, (3, 3)), rotations)
    error = refused_oriented(tmp_path, glb, ndjson)
    assert error.path == ndjson and error.line == 2


def metadata(files_entry: dict | None = None, **top) -> dict:
    entry = {"shape": "OrientedPoint", "format": "ndjson", "path": "1/a_orientedpoint.ndjson"}
    return {
        "annotation_object": {"id": "GO:0045259", "name": "ATP synthase"},
        "files": [{**entry, **(files_entry or {})}],
        **top,
    }


def test_template_path_rules(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "1").mkdir(parents=True)
    model = write_glb(root / "1" / "model.glb", ico().vertices, ico().faces)
    meta = root / "1" / "a-1.0.json"
    none = MeshConfig()
    found = template_path(metadata({"mesh_source_path": "1/model.glb"}), meta, root, none)
    assert found == model.resolve()
    assert template_path(metadata(mesh_source_path="1/model.glb"), meta, root, none) == found
    assert template_path(metadata(), meta, root, none) is None
    by_id = MeshConfig(templates=(TemplateRule(path="1/model.glb", object_id="GO:0045259"),))
    assert template_path(metadata(), meta, root, by_id) == root / "1" / "model.glb"
    by_name = MeshConfig(templates=(TemplateRule(path=str(model), object_name="atp SYNTHASE"),))
    assert template_path(metadata(), meta, root, by_name) == model
    other = MeshConfig(templates=(TemplateRule(path=str(model), object_id="GO:1"),))
    assert template_path(metadata(), meta, root, other) is None


@pytest.mark.parametrize(
    ("relative", "message"),
    [("1/missing.glb", "does not exist"), ("../outside.glb", "leaves the data root")],
)
def test_template_path_errors(tmp_path: Path, relative: str, message: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    write_glb(tmp_path / "outside.glb", ico().vertices, ico().faces)  # exists, but outside
    meta = root / "a-1.0.json"
    with pytest.raises(InputError) as info:
        template_path(metadata({"mesh_source_path": relative}), meta, root, MeshConfig())
    assert info.value.path == meta and message in str(info.value)
    configured = MeshConfig(templates=(TemplateRule(path="nope.glb", object_name="ATP synthase"),))
    with pytest.raises(InputError) as info:
        template_path(metadata(), meta, root, configured)
    assert info.value.path == root / "nope.glb"


def test_config_names_a_bad_template_rule(tmp_path: Path) -> None:
    from cryoet_ng.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"data_root": ".", "meshes": {"templates": [{"pth": "x"}]}}))
    with pytest.raises(ConfigError, match=r"meshes\.templates\[0\]\.pth"):
        load_config(path)
