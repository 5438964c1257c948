"""Typed metadata records (cryoet_ng.metadata): strict types, one problem naming the field,
unknown shapes skipped, and (hypothesis) no exception for any JSON value in any field."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoet_ng.metadata import (
    AnnotationMetadata,
    FileEntry,
    Problem,
    TomogramMetadata,
    loads,
    parse_annotation,
    parse_dataset,
    parse_run,
    parse_tomogram,
)

ANNOTATION: dict[str, Any] = {
    "annotation_object": {"name": "cytosolic ribosome", "id": "GO:0022626", "diameter": 280.0},
    "files": [
        {
            "shape": "Point",
            "format": "ndjson",
            "path": "10000/TS_026/x_point.ndjson",
            "is_visualization_default": True,
        },
        {"shape": "TriangularMesh", "format": "glb", "path": "10000/TS_026/x.glb"},
    ],
    "method_type": "manual",
    "ground_truth_status": True,
    "is_curator_recommended": False,
    "version": "1.0",
    "object_count": 12,
    "alignment_metadata_path": "10000/TS_026/Alignments/100/alignment_metadata.json",
    "authors": [{"name": "A"}],  # not read: anything goes
}
TOMOGRAM: dict[str, Any] = {
    "voxel_spacing": 13.48,
    "size": {"x": 630, "y": 630, "z": 184},
    "omezarr_dir": "10000/TS_026/Reconstructions/VoxelSpacing13.480/Tomograms/100/TS_026.zarr",
    "mrc_file": None,
    "is_visualization_default": True,
}


def test_valid_documents_give_records() -> None:
    annotation, problems = parse_annotation(ANNOTATION)
    assert problems == [] and annotation is not None
    assert annotation.record.ground_truth_status is True
    assert annotation.record.annotation_object.diameter == 280.0
    assert [f.shape for f in annotation.files] == ["Point", "TriangularMesh"]
    tomogram, problem = parse_tomogram(TOMOGRAM)
    assert problem is None and tomogram is not None and tomogram.size is not None
    assert (tomogram.size.x, tomogram.size.y, tomogram.size.z) == (630, 630, 184)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"ground_truth_status": "false"}, "ground_truth_status", "Expected bool, got str"),
        ({"is_curator_recommended": 1}, "is_curator_recommended", "Expected bool, got int"),
        ({"annotation_object": {"id": "GO:1"}}, "annotation_object.name", "missing"),
        ({"annotation_object": {"name": ""}}, "annotation_object.name", "length >= 1"),
        ({"annotation_object": "ribosome"}, "annotation_object", "Expected object"),
        ({"files": {"shape": "Point"}}, "files", "Expected array, got object"),
        ({"files": []}, "files", "no files listed"),
        ({"object_count": -1}, "object_count", ">= 0"),
        ({"version": None}, "version", "got null"),
        ({"method_type": ["manual"]}, "method_type", "Expected str, got array"),
    ],
)
def test_a_bad_field_is_one_problem_naming_it(change: dict, field: str, message: str) -> None:
    annotation, problems = parse_annotation(ANNOTATION | change)
    assert annotation is None
    assert [p.field for p in problems] == [field], problems
    assert message in problems[0].message


def test_missing_files_is_a_problem() -> None:
    doc = {k: v for k, v in ANNOTATION.items() if k != "files"}
    assert parse_annotation(doc) == (None, [Problem("files", "missing (required)")])


def test_bad_and_unknown_file_entries_are_skipped_alone() -> None:
    files = [
        {"shape": "Sphere", "format": "ndjson", "path": "a.ndjson"},
        5,
        {"shape": "Point", "format": "ndjson"},
        {
            "shape": "Point",
            "format": "ndjson",
            "path": "b.ndjson",
            "is_visualization_default": "no",
        },
        {"shape": "OrientedPoint", "format": "ndjson", "path": "c.ndjson"},
    ]
    annotation, problems = parse_annotation(ANNOTATION | {"files": files})
    assert annotation is not None
    assert [f.path for f in annotation.files] == ["c.ndjson"]
    assert [p.field for p in problems] == [
        "files[0].shape",
        "files[1]",
        "files[2].path",
        "files[3].is_visualization_default",
    ]
    assert "unknown shape 'Sphere'" in problems[0].message
    assert all(p.message.endswith("entry skipped") for p in problems)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"size": {"x": "630", "y": 630, "z": 184}}, "size.x"),
        ({"size": {"x": 630, "y": 630}}, "size.z"),
        ({"size": [630, 630, 184]}, "size"),
        ({"size": {"x": 0, "y": 1, "z": 1}}, "size.x"),
        ({"is_visualization_default": "true"}, "is_visualization_default"),
        ({"omezarr_dir": 5}, "omezarr_dir"),
    ],
)
def test_tomogram_fields_are_checked(change: dict, field: str) -> None:
    tomogram, problem = parse_tomogram(TOMOGRAM | change)
    assert tomogram is None and problem is not None and problem.field == field, problem


@pytest.mark.parametrize("spacing", ["13.48", -1, None, 0, [13.48]])
def test_a_bad_voxel_spacing_keeps_the_tomogram(spacing: Any) -> None:
    tomogram, problem = parse_tomogram(TOMOGRAM | {"voxel_spacing": spacing})
    assert tomogram is not None and tomogram.voxel_spacing is msgspec.UNSET
    assert problem is not None and problem.field == "voxel_spacing"
    assert problem.message.endswith("the folder's spacing is used")
    tomogram, problem = parse_tomogram(TOMOGRAM | {"voxel_spacing": spacing, "size": 5})
    assert tomogram is None and problem is not None and problem.field == "size"


def test_run_and_dataset_fields_are_checked() -> None:
    assert parse_run({"run_name": "TS_026", "anything": [1]})[1] is None
    assert parse_run({"run_name": 5})[1] == Problem("run_name", "Expected str | null, got int")
    assert parse_dataset({"dataset_title": {"a": 1}})[1] is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": 1e999}', "1e999 is out of range"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "not a JSON object but an array"),
        (b'{"a": 1,}', "line 1, column 9"),
        (b"", "not valid JSON"),
    ],
)
def test_loads_is_strict(data: bytes, message: str) -> None:
    doc, problem = loads(data)
    assert doc is None and problem is not None and message in problem.message, problem


# -- fuzzing: any JSON value in any field ------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities too: json.loads of an old index gives them
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def mutated(base: dict[str, Any], draw_value: st.DrawFn, nested: tuple[str, ...]) -> dict:
    doc = json.loads(json.dumps(base))
    for key in list(doc):
        if draw_value(st.booleans()):
            doc[key] = draw_value(json_values)
    for key in nested:
        if isinstance(doc.get(key), dict):
            for sub in list(doc[key]):
                if draw_value(st.booleans()):
                    doc[key][sub] = draw_value(json_values)
    if draw_value(st.booleans()):
        doc[draw_value(st.text(max_size=10))] = draw_value(json_values)
    return doc


@st.composite
def annotation_docs(draw: st.DrawFn) -> dict:
    doc = mutated(ANNOTATION, draw, ("annotation_object",))
    if isinstance(doc.get("files"), list):
        doc["files"] = [
            {k: draw(json_values) if draw(st.booleans()) else v for k, v in entry.items()}
            if isinstance(entry, dict)
            else entry
            for entry in doc["files"]
        ]
    return doc


@settings(max_examples=300, deadline=None)
@given(annotation_docs())
def test_fuzz_annotation(doc: dict) -> None:
    annotation, problems = parse_annotation(doc)
    assert all(isinstance(p, Problem) and p.message for p in problems)
    if annotation is None:
        assert problems
        return
    record = annotation.record
    assert isinstance(record, AnnotationMetadata)
    assert type(record.ground_truth_status) is bool
    assert type(record.is_curator_recommended) is bool
    assert isinstance(record.annotation_object.name, str) and record.annotation_object.name
    diameter = record.annotation_object.diameter
    assert diameter is None or (math.isfinite(diameter) and diameter > 0) or diameter == math.inf
    count = record.object_count
    assert count is None or (type(count) is int and count >= 0)
    for entry in annotation.files:
        assert isinstance(entry, FileEntry)
        assert all(isinstance(v, str) and v for v in (entry.shape, entry.format, entry.path))
        assert entry.is_visualization_default in (None, True, False)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_tomogram_run_dataset(data: st.DataObject) -> None:
    doc = mutated(TOMOGRAM, data.draw, ("size",))
    tomogram, problem = parse_tomogram(doc)
    assert tomogram is not None or problem is not None
    if tomogram is not None:
        assert problem is None or problem.field == "voxel_spacing"
        assert isinstance(tomogram, TomogramMetadata)
        assert type(tomogram.is_visualization_default) is bool
        spacing = tomogram.voxel_spacing
        assert spacing is msgspec.UNSET or (isinstance(spacing, float) and spacing > 0)
        if tomogram.size is not None:
            assert all(type(n) is int and n >= 1 for n in (tomogram.size.x, tomogram.size.y))
    other = data.draw(json_values)
    for parse in (parse_run, parse_dataset, parse_tomogram):
        record, problem = parse(other if isinstance(other, dict) else {"run_name": other})
        assert record is not None or problem is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_fuzz_loads(data: bytes) -> None:
    doc, problem = loads(data)
    assert (doc is None) != (problem is None)
    if doc is not None:
        assert isinstance(doc, dict)
