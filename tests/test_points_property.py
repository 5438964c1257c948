"""Property-based round trips: random point sets (duplicates, single points, flat extents)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_points_support import all_spatial, geometry, point_records, query_boxes, reader, run

from cryoet_ng.config import PrecomputeConfig

# Coordinates from a small grid (many duplicates, points exactly on cell and layer bounds),
# optionally flattened along axes, or arbitrary floats.
coarse = arrays(np.float64, st.tuples(st.integers(1, 120), st.just(3)), elements=st.integers(0, 6))
fine = arrays(
    np.float64,
    st.tuples(st.integers(1, 120), st.just(3)),
    elements=st.floats(-1e4, 1e4, allow_nan=False, width=32),
)


@st.composite
def point_sets(draw: st.DrawFn) -> np.ndarray:
    xyz = draw(st.one_of(coarse, fine)).copy()
    for axis in draw(st.sets(st.integers(0, 2), max_size=3)):
        xyz[:, axis] = xyz[0, axis]  # flat (degenerate) extent along this axis
    return xyz


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xyz=point_sets(), limit=st.integers(1, 25), seed=st.integers(0, 2**16))
def test_every_point_indexed_once_and_queries_exact(xyz: np.ndarray, limit: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        job, summary = run(
            Path(tmp), point_records(xyz), options=PrecomputeConfig(annotation_limit=limit)
        )
        r = reader(job.output)
        f32 = xyz.astype(np.float32).astype(np.float64)
        assert summary.count == len(xyz)
        levels = r.metadata["spatial"]
        assert levels[0]["grid_shape"] == [1, 1, 1]
        seen = []
        for level, _cell, annotations in all_spatial(r):
            assert 0 < len(annotations) <= levels[level]["limit"]
            assert levels[level]["limit"] <= limit or level == len(levels) - 1
            seen += [int(a.id) for a in annotations]
            for a in annotations:
                assert np.array_equal(geometry(a), f32[int(a.id)])
                assert int(a.props[0]) == int(a.id)
        assert sorted(seen) == list(range(len(xyz)))
        for i in {0, len(xyz) - 1, len(xyz) // 2}:
            assert np.array_equal(geometry(r.by_id[i]), f32[i])
        rng = np.random.default_rng(seed)
        span = f32.max(0) - f32.min(0) + 1
        for _ in range(2):
            a, b = f32.min(0) - 0.5 + rng.uniform(0, 1.2, (2, 3)) * span
            lower, upper = np.minimum(a, b), np.maximum(a, b)
            inside = np.all((f32 >= lower) & (f32 <= upper), axis=1)
            assert set(query_boxes(r, lower, upper)) == set(np.flatnonzero(inside).tolist())
        # A box that is exactly one stored point (its cell boundary may lie on it).
        p = f32[rng.integers(len(f32))]
        expected = set(np.flatnonzero(np.all(f32 == p, axis=1)).tolist())
        assert set(query_boxes(r, p, p)) == expected
