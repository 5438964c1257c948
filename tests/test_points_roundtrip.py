"""Point, oriented-point and instance-point layers read back with neuroglancer's reader."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from test_points_support import (
    all_spatial,
    geometry,
    point_records,
    query_boxes,
    random_rotations,
    reader,
    run,
)

from cryoet_ng.config import LayerStyle, PrecomputeConfig
from cryoet_ng.instance_colours import instance_colour
from cryoet_ng.summaries import read_summary

F32 = np.float32


def _cloud(n: int, seed: int = 0, size: float = 400.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Clustered + uniform, so cells have very different densities.
    centres = rng.uniform(0, size, (5, 3))
    clustered = centres[rng.integers(0, 5, n // 2)] + rng.normal(0, 8, (n // 2, 3))
    return np.round(np.vstack([clustered, rng.uniform(0, size, (n - n // 2, 3))]), 3)


def test_points_by_id_properties_and_summary(tmp_path: Path) -> None:
    xyz = _cloud(3000)
    options = PrecomputeConfig(annotation_limit=200)
    job, summary = run(
        tmp_path, point_records(xyz), options=options, diameter_angstrom=250.0, extent_m=None
    )
    r = reader(job.output)
    assert r.annotation_type == "point"
    spacing_m = 13.48e-10
    assert r.coordinate_space.scales.tolist() == pytest.approx([spacing_m] * 3)
    assert list(r.coordinate_space.units) == ["m"] * 3
    f32 = xyz.astype(F32)
    assert r.lower_bound == tuple(f32.min(0).astype(float))
    # Exclusive upper bound (annotations.md): the maximum plus about one ulp.
    top = f32.max(0).astype(float)
    assert np.all(np.asarray(r.upper_bound) > top)
    assert np.allclose(r.upper_bound, top, rtol=1e-13, atol=0)
    ids = [p.id for p in r.properties]
    assert ids == ["point_index", "diameter", "name", "color"]
    name = r.properties[2]
    assert name.type == "uint8" and list(name.enum_labels) == ["ribosome"]
    for i in np.random.default_rng(1).choice(len(xyz), 60, replace=False):
        a = r.by_id[int(i)]
        assert np.array_equal(geometry(a), f32[i].astype(float))
        point_index, diameter, label, colour = a.props
        assert int(point_index) == i
        assert float(diameter) == pytest.approx(250.0 / 13.48, rel=1e-6)
        assert int(label) == 0 and list(colour) == [255, 255, 255]
    assert summary.kind == "annotation" and summary.count == len(xyz)
    m = xyz * spacing_m
    assert summary.bounds == (m.min(0).tolist(), m.max(0).tolist())
    assert summary.occupancy is not None and summary.occupancy.values.sum() == len(xyz)
    assert summary.extra["levels"] == len(r.spatial) >= 3
    assert summary.extra["output"] == job.output.name
    stored = read_summary(job.summary)
    assert stored is not None and stored.to_json() == summary.to_json()


def test_spatial_index_is_a_real_multilevel_sample(tmp_path: Path) -> None:
    xyz = _cloud(4000, seed=3)
    limit = 150
    job, _ = run(tmp_path, point_records(xyz), options=PrecomputeConfig(annotation_limit=limit))
    r = reader(job.output)
    levels = r.metadata["spatial"]
    assert levels[0]["grid_shape"] == [1, 1, 1]
    extent = np.asarray(r.upper_bound) - np.asarray(r.lower_bound)
    for before, after in itertools.pairwise(levels):
        ratio = np.asarray(before["chunk_size"]) / np.asarray(after["chunk_size"])
        assert set(ratio.tolist()) <= {1.0, 2.0} and ratio.max() == 2.0
        assert np.asarray(after["grid_shape"]) @ [1, 1, 1] > 3
    for level in levels:
        assert np.allclose(np.multiply(level["grid_shape"], level["chunk_size"]), extent)
        assert "sharding" in level and level["limit"] <= limit
    cells = all_spatial(r)
    seen: list[int] = []
    for level, cell, found in cells:
        assert 0 < len(found) <= levels[level]["limit"]
        chunk = np.asarray(levels[level]["chunk_size"])
        lo = np.asarray(r.lower_bound) + np.asarray(cell) * chunk
        for a in found:
            p = geometry(a)
            assert np.all(p >= lo - 1e-9) and np.all(p <= lo + chunk + 1e-9)
            seen.append(int(a.id))
    # Points: every annotation is in exactly one cell of one level.
    assert sorted(seen) == list(range(len(xyz)))
    level0 = next(a for lv, _, a in cells if lv == 0)
    assert len(level0) == limit
    # Level 0 is a uniform sample: not biased to the clusters' first records, any order.
    assert np.mean([int(a.id) for a in level0]) == pytest.approx(len(xyz) / 2, rel=0.15)


def test_spatial_queries_match_brute_force(tmp_path: Path) -> None:
    xyz = _cloud(2500, seed=5)
    job, _ = run(tmp_path, point_records(xyz), options=PrecomputeConfig(annotation_limit=100))
    r = reader(job.output)
    f32 = xyz.astype(F32).astype(float)
    rng = np.random.default_rng(7)
    for _ in range(8):
        a, b = rng.uniform(-20, 420, (2, 3))
        lower, upper = np.minimum(a, b), np.maximum(a, b)
        expected = set(np.flatnonzero(np.all((f32 >= lower) & (f32 <= upper), axis=1)).tolist())
        assert set(query_boxes(r, lower, upper)) == expected
        # neuroglancer's own spatial query (it filters points exactly) agrees.
        got = {int(x.id) for x in r.get_within_spatial_bounds(lower_bound=lower, upper_bound=upper)}
        assert got == expected


def test_oriented_points_are_three_lines_along_rotation_columns(tmp_path: Path) -> None:
    n = 400
    xyz = _cloud(n, seed=11, size=300.0)
    rotation = random_rotations(n, seed=4)
    style = LayerStyle(oriented_line_factor=1.5, default_diameter_voxels=12.0)
    options = PrecomputeConfig(annotation_limit=90)
    records = point_records(xyz, "OrientedPoint", rotation=rotation)
    job, summary = run(tmp_path, records, "OrientedPoint", options=options, style=style)
    r = reader(job.output)
    assert r.annotation_type == "line"
    assert [p.id for p in r.properties] == [
        "point_index",
        "diameter",
        "name",
        "point_color",
        "line_color",
    ]
    assert summary.count == n and summary.extra["annotations"] == 3 * n
    colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    for i in range(0, n, 7):
        for axis in range(3):
            line = r.by_id[3 * i + axis]
            start = xyz[i].astype(F32)
            end = (xyz[i] + 18.0 * rotation[i][:, axis]).astype(F32)
            assert np.array_equal(geometry(line), np.concatenate([start, end]).astype(float))
            point_index, diameter, _, point_colour, line_colour = line.props
            assert int(point_index) == i and float(diameter) == 12.0
            assert list(point_colour) == [255, 255, 255]
            assert list(line_colour) == colours[axis]
    # Lines crossing cells are indexed in every cell they meet: queries stay exact.
    starts = xyz.astype(F32).astype(float)[:, None, :]
    ends = (xyz[:, None, :] + 18.0 * np.swapaxes(rotation, 1, 2)).astype(F32).astype(float)
    lower, upper = np.minimum(starts, ends).reshape(-1, 3), np.maximum(starts, ends).reshape(-1, 3)
    rng = np.random.default_rng(2)
    for _ in range(6):
        a, b = rng.uniform(-10, 320, (2, 3))
        qlo, qhi = np.minimum(a, b), np.maximum(a, b)
        hit = np.all((lower <= qhi) & (upper >= qlo), axis=1)
        assert set(query_boxes(r, qlo, qhi)) == set(np.flatnonzero(hit).tolist())


def test_instance_points_relationship_names_and_colours(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    n = 1500
    instance = rng.choice([3, 7, 12, 40000, 2**40 + 5], n)
    xyz = _cloud(n, seed=9)
    records = point_records(xyz, "InstanceSegmentation", instance_id=instance)
    job, summary = run(tmp_path, records, "InstanceSegmentation", object_name="membrane")
    r = reader(job.output)
    assert list(r.relationships) == ["instance"]
    assert r.metadata["relationships"][0]["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    unique = sorted(set(instance.tolist()))
    name = r.properties[2]
    assert list(name.enum_labels) == [f"membrane {i}" for i in unique]
    for value in unique:
        got = r.relationships["instance"][value]
        expected = np.flatnonzero(instance == value)
        assert sorted(int(a.id) for a in got) == expected.tolist()
        for a in got[:5]:
            assert np.array_equal(geometry(a), xyz[int(a.id)].astype(F32).astype(float))
            # The shared instance palette: the instance mask's label `value` has this colour.
            assert "#" + bytes(a.props[3]).hex() == instance_colour(value)
            assert name.enum_labels[int(a.props[2])] == f"membrane {value}"
    for i in range(0, n, 37):
        a = r.by_id[i]
        assert [list(map(int, s)) for s in a.segments] == [[int(instance[i])]]
    assert summary.extra["instances"] == len(unique)


def test_deterministic_bytes(tmp_path: Path) -> None:
    xyz = _cloud(2000, seed=13)
    records = point_records(xyz, "InstanceSegmentation", instance_id=np.arange(2000) % 9)
    outputs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        options = PrecomputeConfig(annotation_limit=150)
        job, _ = run(tmp_path / name, records, "InstanceSegmentation", options=options)
        outputs.append(job.output)
    files = sorted(p.relative_to(outputs[0]) for p in outputs[0].rglob("*") if p.is_file())
    assert len(files) >= 5
    assert files == sorted(p.relative_to(outputs[1]) for p in outputs[1].rglob("*") if p.is_file())
    for f in files:
        assert (outputs[0] / f).read_bytes() == (outputs[1] / f).read_bytes(), f


def test_empty_file_gives_a_loadable_empty_layer(tmp_path: Path) -> None:
    job, summary = run(tmp_path, [], "OrientedPoint")
    r = reader(job.output)
    assert list(r.get_within_spatial_bounds()) == []
    assert summary.count == 0 and summary.bounds is None
    assert r.spatial[0][(0, 0, 0)] == []  # level 0 cell exists and is empty
    assert not [p for p in job.output.parent.iterdir() if p.name.startswith(".tmp-")]


def test_unsharded_for_tiny_layers(tmp_path: Path) -> None:
    xyz = _cloud(300, seed=2)
    options = PrecomputeConfig(annotation_limit=40, shard_min_annotations=1000)
    job, _ = run(tmp_path, point_records(xyz), options=options)
    info = json.loads((job.output / "info").read_text())
    assert "sharding" not in info["by_id"] and "sharding" not in info["spatial"][0]
    r = reader(job.output)
    assert np.array_equal(geometry(r.by_id[17]), xyz[17].astype(F32).astype(float))
    assert sorted(int(a.id) for a in r.get_within_spatial_bounds()) == list(range(300))


def test_level0_cell_stays_small_for_many_points(tmp_path: Path) -> None:
    xyz = np.random.default_rng(0).uniform(0, 1000, (60_000, 3)).round(1)
    job, _ = run(tmp_path, point_records(xyz), options=PrecomputeConfig(annotation_limit=5000))
    r = reader(job.output)
    level0 = r.spatial[0][(0, 0, 0)]
    assert len(level0) == 5000
    shard = next((job.output / "spatial0").iterdir())
    assert shard.stat().st_size < 1 << 20
