"""Point files beyond ``points_in_memory``: sorted on disk, byte-identical to the in-memory path.

Each case converts one ndjson file twice, with a budget above its size (the in-memory path)
and with a small one (the external path: spill, threshold passes, bucket sort, streamed
shards), and compares every output byte and the summaries. The files are then read back by
neuroglancer's reader, as the in-memory outputs are elsewhere.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_points_support import point_records, reader, write_ndjson

from cryoet_ng.config import LayerStyle, PrecomputeConfig
from precompute.errors import InputError
from precompute.jobs import AnnotationJob
from precompute.points import convert
from precompute.points.spatial import Bounds, _schedule, build_levels
from precompute.points.thresholds import emission_levels, linear_cells, pack, plan_levels


def convert_both(
    folder: Path, records: list[dict], shape: str, budget: int, **options: int
) -> tuple[dict[str, bytes], dict[str, bytes], dict, dict]:
    source = write_ndjson(folder / "points.ndjson", records)
    trees, summaries = [], []
    for name, limit in (("memory", 10**9), ("disk", budget)):
        job = AnnotationJob(
            source=source,
            shape=shape,
            output=folder / name / "7-thing-1_point",
            annotation_id="7",
            object_name="thing",
            voxel_spacing=13.48,
        )
        summary = convert(job, PrecomputeConfig(points_in_memory=limit, **options), LayerStyle())
        summary.write(job.summary)  # as the runner does once a converter returns
        trees.append(
            {
                str(p.relative_to(job.output)): p.read_bytes()
                for p in job.output.rglob("*")
                if p.is_file()
            }
        )
        summaries.append(json.loads(job.summary.read_text()))
        assert not list(job.output.parent.glob(".tmp-*")), "spill files left behind"
    return trees[0], trees[1], summaries[0], summaries[1]


def clustered(n: int, seed: int) -> np.ndarray:
    """Points in dense clusters, a sparse background and exact duplicates (many levels)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 900, (8, 3))
    xyz = centres[rng.integers(0, 8, n)] + rng.normal(0, 6, (n, 3))
    xyz[: n // 5] = rng.uniform(0, 1000, (n // 5, 3))
    xyz[n // 5 : n // 5 + 50] = xyz[0]  # duplicates
    return np.round(np.abs(xyz), 3)


def assert_same(memory: dict, disk: dict, s_memory: dict, s_disk: dict) -> None:
    assert memory.keys() == disk.keys()
    differ = sorted(k for k in memory if memory[k] != disk[k])
    assert not differ, f"files differ: {differ[:5]}"
    assert s_memory == s_disk


@pytest.mark.parametrize("shape", ["Point", "InstanceSegmentation"])
def test_external_path_gives_the_same_bytes(tmp_path: Path, shape: str) -> None:
    xyz = clustered(30_000, seed=1)
    columns = {}
    if shape == "InstanceSegmentation":
        columns["instance_id"] = np.random.default_rng(2).integers(1, 400, len(xyz))
    records = point_records(xyz, shape, **columns)
    memory, disk, s_memory, s_disk = convert_both(
        tmp_path, records, shape, budget=2_000, annotation_limit=300
    )
    assert_same(memory, disk, s_memory, s_disk)
    assert s_disk["levels"] >= 3
    out = tmp_path / "disk" / "7-thing-1_point"
    r = reader(out)
    assert len(r.spatial) == s_disk["levels"]
    for i in (0, 12_345, len(xyz) - 1):
        np.testing.assert_allclose(r.by_id[i].point, xyz[i], atol=1e-3)


def test_external_unsharded(tmp_path: Path) -> None:
    records = point_records(clustered(3_000, seed=3))
    assert_same(
        *convert_both(
            tmp_path, records, "Point", budget=300, annotation_limit=50, shard_min_annotations=10**6
        )
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 300),
    budget=st.integers(15, 60),
    limit=st.integers(1, 30),
    seed=st.integers(0, 2**16),
    spread=st.sampled_from([1.0, 50.0, 1000.0]),
)
def test_external_matches_memory_property(
    n: int, budget: int, limit: int, seed: int, spread: float
) -> None:
    rng = np.random.default_rng(seed)
    xyz = np.round(rng.uniform(0, spread, (n, 3)), 2)
    ids = rng.integers(1, 6, n)
    records = point_records(xyz, "InstanceSegmentation", instance_id=ids)
    with tempfile.TemporaryDirectory() as tmp:
        result = convert_both(
            Path(tmp), records, "InstanceSegmentation", budget=budget, annotation_limit=limit
        )
        assert_same(*result)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 2_000),
    limit=st.integers(1, 200),
    batches=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_level_plans_match_build_levels(n: int, limit: int, batches: int, seed: int) -> None:
    """The threshold passes emit every point at the level build_levels puts it in."""
    rng = np.random.default_rng(seed)
    xyz = np.round(rng.uniform(0, 100, (n, 3)) ** rng.uniform(0.5, 2), 1)
    bounds = Bounds.enclosing(xyz, xyz)
    schedule = _schedule(bounds)
    order = rng.permutation(n)
    levels = build_levels(xyz, xyz, bounds, order, limit)
    expected = np.full(n, -1)
    for number, level in enumerate(levels):
        expected[order[level.members]] = number
    from precompute.points.spatial import _cell_of

    fine = _cell_of(xyz, bounds, schedule[-1][1], schedule[-1][0])
    packed = pack(fine)
    rank = np.empty(n, np.uint32)
    rank[order] = np.arange(n)
    bits = np.log2(schedule[-1][0]).astype(np.int64)

    batch = -(-n // batches)

    def each():
        for a in range(0, n, batch):
            yield packed[a : a + batch], rank[a : a + batch]

    plans = plan_levels(each, schedule, limit)
    got, _ = emission_levels(packed, rank, plans, bits)
    np.testing.assert_array_equal(got, expected)
    assert [int(p.take.max()) for p in plans] == [lv.limit for lv in levels]
    for plan, level in zip(plans, levels, strict=True):
        np.testing.assert_array_equal(np.sort(plan.keys()), level.keys)
        assert linear_cells(packed, plan.grid, bits).max() < plan.grid.prod()


def test_bad_record_in_a_later_batch_names_its_line(tmp_path: Path) -> None:
    records = point_records(clustered(5_000, seed=4))
    records[4_321]["location"]["y"] = None
    source = write_ndjson(tmp_path / "points.ndjson", records)
    job = AnnotationJob(
        source=source,
        shape="Point",
        output=tmp_path / "out" / "7-thing-1_point",
        annotation_id="7",
        object_name="thing",
        voxel_spacing=13.48,
    )
    with pytest.raises(InputError) as info:
        convert(job, PrecomputeConfig(points_in_memory=500), LayerStyle())
    assert info.value.line == 4_322
    assert not job.output.exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp")]
    shutil.rmtree(tmp_path / "out")
