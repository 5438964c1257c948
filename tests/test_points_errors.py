"""Bad point input: InputError naming file and line; nothing written for the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_points_support import make_job, point_records, reader

from cryoet_ng.config import LayerStyle, PrecomputeConfig
from precompute.errors import InputError
from precompute.points import convert

GOOD = {"type": "point", "location": {"x": 1.0, "y": 2.0, "z": 3.0}}
ROT = {
    "type": "orientedPoint",
    "location": {"x": 1, "y": 2, "z": 3},
    "xyz_rotation_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
}
INST = {"type": "instancePoint", "location": {"x": 1, "y": 2, "z": 3}, "instance_id": 4}


def _lines(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def _convert(tmp_path: Path, text: str, shape: str = "Point", **options: object):
    source = tmp_path / "bad.ndjson"
    source.write_text(text)
    job = make_job(tmp_path, source, shape, volume_size_xyz=(100, 100, 50))
    return job, convert(job, PrecomputeConfig(**options), LayerStyle())  # type: ignore[arg-type]


def _rotated(matrix: object) -> dict:
    return {**ROT, "xyz_rotation_matrix": matrix}


CASES = [
    ("Point", _lines(GOOD, GOOD, "{not json"), 3, "malformed JSON"),
    ("Point", _lines(GOOD, "[1, 2, 3]"), 2, "not a JSON object"),
    ("Point", _lines(GOOD, {"type": "point"}), 2, "location"),
    ("Point", _lines(GOOD, GOOD, {"type": "point", "location": {"x": 1, "y": 2}}), 3, "location"),
    (
        "Point",
        _lines(GOOD, {"type": "point", "location": {"x": "a", "y": 2, "z": 3}}),
        2,
        "location",
    ),
    (
        "Point",
        _lines(GOOD, {"type": "point", "location": {"x": True, "y": 2, "z": 3}}),
        2,
        "location",
    ),
    ("Point", _lines(GOOD, '{"type":"point","location":{"x":NaN,"y":2,"z":3}}'), 2, "NaN"),
    ("Point", _lines(GOOD, '{"type":"point","location":{"x":1e999,"y":2,"z":3}}'), 2, "NaN or inf"),
    (
        "Point",
        _lines(GOOD, "", GOOD, {**GOOD, "type": "sphere"}),
        4,
        "unknown record type 'sphere'",
    ),
    ("Point", _lines(GOOD, ROT), 2, "record type 'orientedPoint' in a Point file"),
    ("Point", _lines(GOOD, {**GOOD, "location": {"x": 100, "y": 2, "z": 3}}), 2, "outside"),
    ("Point", _lines(GOOD, {**GOOD, "location": {"x": 1, "y": 2, "z": -0.5}}), 2, "outside"),
    ("OrientedPoint", _lines(ROT, {**ROT, "xyz_rotation_matrix": None}), 2, "missing xyz_rot"),
    ("OrientedPoint", _lines(ROT, _rotated([[1, 0], [0, 1]])), 2, "3x3"),
    ("OrientedPoint", _lines(ROT, ROT, _rotated([[1, 0, 0], [0, 1, 0], [0, 0]])), 3, "3x3"),
    ("OrientedPoint", _lines(ROT, _rotated([[1, 0, 0], [0, 1, 0], [0, 0, "z"]])), 2, "3x3"),
    ("OrientedPoint", _lines(ROT, _rotated([[2, 0, 0], [0, 1, 0], [0, 0, 1]])), 2, "not a proper"),
    ("OrientedPoint", _lines(ROT, _rotated([[1, 0, 0], [0, 1, 0], [0, 0, -1]])), 2, "det = -1"),
    ("OrientedPoint", _lines(ROT, _rotated([[1, 0.01, 0], [0, 1, 0], [0, 0, 1]])), 2, "proper"),
    ("InstanceSegmentation", _lines(INST, {**INST, "instance_id": 2.5}), 2, "non-negative int"),
    ("InstanceSegmentation", _lines(INST, {**INST, "instance_id": "7"}), 2, "non-negative int"),
    ("InstanceSegmentation", _lines(INST, INST, {**INST, "instance_id": -1}), 3, "non-negative"),
    ("InstanceSegmentation", _lines(INST, {"type": "instancePoint", **GOOD}), 2, "instance_id"),
]


@pytest.mark.parametrize(("shape", "text", "line", "message"), CASES)
def test_bad_record_names_file_and_line(
    tmp_path: Path, shape: str, text: str, line: int, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        _convert(tmp_path, text, shape)
    error = caught.value
    assert error.path == tmp_path / "bad.ndjson"
    assert error.line == line, str(error)
    assert message in error.reason
    assert str(error).startswith(f"{tmp_path / 'bad.ndjson'}:{line}: ")
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), "nothing may be written for a bad file"


def test_first_bad_line_wins_among_different_problems(tmp_path: Path) -> None:
    nan = '{"type":"point","location":{"x":NaN,"y":2,"z":3}}'
    text = _lines(GOOD, GOOD, {**GOOD, "type": "box"}, nan, {"type": "point"})
    with pytest.raises(InputError) as caught:
        _convert(tmp_path, text)
    assert caught.value.line == 3


def test_error_late_in_a_large_file(tmp_path: Path) -> None:
    xyz = np.random.default_rng(0).uniform(0, 40, (5000, 3))
    records = [json.dumps(r) for r in point_records(xyz)]
    records[4321] = records[4321].replace('"x": ', '"x": "oops", "w": ')
    with pytest.raises(InputError) as caught:
        _convert(tmp_path, "\n".join(records) + "\n")
    assert caught.value.line == 4322


def test_rotation_tolerance_is_configurable(tmp_path: Path) -> None:
    text = _lines(ROT, _rotated([[1, 0.01, 0], [0, 1, 0], [0, 0, 1]]))
    _, summary = _convert(tmp_path, text, "OrientedPoint", rotation_tolerance=0.05)
    assert summary.count == 2


@pytest.mark.parametrize(("policy", "count"), [("drop", 2), ("keep", 3)])
def test_out_of_bounds_policies(tmp_path: Path, policy: str, count: int) -> None:
    outside = {**GOOD, "location": {"x": 99.5, "y": 2, "z": 3}}
    job, summary = _convert(tmp_path, _lines(GOOD, outside, GOOD), out_of_bounds=policy)
    assert summary.count == count and summary.extra["out_of_bounds"] == 1
    ids = sorted(int(a.id) for a in reader(job.output).get_within_spatial_bounds())
    assert ids == ([0, 2] if policy == "drop" else [0, 1, 2])


def test_integral_float_instance_ids_are_accepted(tmp_path: Path) -> None:
    text = _lines(INST, {**INST, "instance_id": 9.0}, {**INST, "extra": {"any": [1, "x"]}})
    job, summary = _convert(tmp_path, text, "InstanceSegmentation")
    assert summary.extra["instances"] == 2
    assert sorted(int(a.id) for a in reader(job.output).relationships["instance"][9]) == [1]


def test_blank_lines_and_missing_type_are_fine(tmp_path: Path) -> None:
    untyped = {"location": {"x": 4, "y": 5, "z": 6}}
    job, summary = _convert(tmp_path, "\n" + _lines(GOOD, untyped) + "\n   \n")
    assert summary.count == 2
    assert list(reader(job.output).by_id[1].point) == [4.0, 5.0, 6.0]


def test_failed_rewrite_keeps_previous_output(tmp_path: Path) -> None:
    job, _ = _convert(tmp_path, _lines(GOOD, GOOD))
    before = (job.output / "info").read_bytes()
    with pytest.raises(InputError):
        _convert(tmp_path, _lines(GOOD, "{"))
    assert (job.output / "info").read_bytes() == before
    assert not [p for p in job.output.parent.iterdir() if p.name.startswith(".tmp-")]


def test_unknown_shape_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no point converter"):
        _convert(tmp_path, _lines(GOOD), "SegmentationMask")
    job = make_job(tmp_path, tmp_path / "absent.ndjson")
    with pytest.raises(InputError, match=r"absent\.ndjson: cannot read"):
        convert(job, PrecomputeConfig(), LayerStyle())
