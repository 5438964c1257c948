"""Property tests: the vectorised instance transform, the cutter, quantisation, level plans."""

from __future__ import annotations

import itertools

import DracoPy
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from mesh_support import partition_ok, random_rotations

from cryoet_ng.config import MeshConfig
from precompute.meshes.cells import place_instances, split_by_cells
from precompute.meshes.glb import TriangleMesh, weld
from precompute.meshes.lods import face_targets
from precompute.multilod import encode_fragment, merge

coords = st.floats(-200, 200, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    vertices=arrays(np.float64, st.tuples(st.integers(1, 30), st.just(3)), elements=coords),
    picks=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_place_instances_matches_a_loop(vertices: np.ndarray, picks: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rotations = random_rotations(picks, rng)
    locations = rng.uniform(-500, 500, (picks, 3))
    faces = rng.integers(0, len(vertices), (7, 3))
    placed, copies = place_instances(vertices, faces, rotations, locations)
    for p in range(picks):
        block = placed[p * len(vertices) : (p + 1) * len(vertices)]
        np.testing.assert_allclose(block, vertices @ rotations[p].T + locations[p], atol=1e-9)
        np.testing.assert_array_equal(copies[p * 7 : (p + 1) * 7], faces + p * len(vertices))


def _area(vertices: np.ndarray, faces: np.ndarray) -> float:
    t = vertices.astype(np.float64)[faces]
    return float(np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1).sum() / 2)


@settings(max_examples=80, deadline=None)
@given(
    corners=arrays(
        np.float64, st.tuples(st.integers(1, 40), st.just(3), st.just(3)), elements=coords
    ),
    cell=st.floats(3.0, 150.0),
    snap_to_grid=st.booleans(),
)
def test_split_by_cells_keeps_area_and_cells(
    corners: np.ndarray, cell: float, snap_to_grid: bool
) -> None:
    if snap_to_grid:  # vertices exactly on cell planes: the hard cases
        corners = np.round(corners / cell) * cell
    vertices = corners.reshape(-1, 3)
    faces = np.arange(len(vertices)).reshape(-1, 3)
    origin = np.floor(vertices.min(axis=0) / cell) * cell - cell
    pieces = split_by_cells(vertices, faces, origin, cell)
    total = sum(_area(*merge(p)) for p in pieces.values())
    assert total == np.float64(_area(vertices, faces)) or np.isclose(
        total, _area(vertices, faces), rtol=1e-4, atol=1e-3
    )
    for key, parts in pieces.items():
        v, _ = merge(parts)
        lower = origin + np.asarray(key) * cell
        slack = 1e-4 * (1 + np.abs(lower).max())  # float32 storage of the pieces
        assert np.all(v >= lower - slack) and np.all(v <= lower + cell + slack)


@settings(max_examples=60, deadline=None)
@given(
    steps=arrays(
        np.int64, st.tuples(st.integers(3, 60), st.just(3)), elements=st.integers(0, 65535)
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_encode_fragment_round_trips_through_draco(steps: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = steps / 65535  # whole quantisation steps: no rounding ties
    size = rng.uniform(1, 300)
    lower = rng.uniform(-100, 100, 3)
    # Some vertices on a mid-plane, as the cutter leaves them for coarse levels.
    points[: len(points) // 3, rng.integers(0, 3)] = 0.5
    faces = rng.integers(0, len(points), (20, 3))
    blob = encode_fragment(lower + points * size, faces, lower, size, snap=True)
    q = np.rint(points * 65535)
    q[np.isclose(points, 0.5)] = 32768  # Neuroglancer's partition point, not 32767
    corners = q[faces]  # (20, 3 corners, 3)
    distinct = [
        tuple(sorted(map(tuple, tri.astype(int).tolist())))
        for tri in corners
        if len({tuple(c) for c in tri.tolist()}) == 3
    ]
    if not distinct:
        assert blob == b""
        return
    decoded = DracoPy.decode(blob)
    stored = np.asarray(decoded.points).astype(int)[np.asarray(decoded.faces).reshape(-1, 3)]
    got = sorted(tuple(sorted(map(tuple, tri.tolist()))) for tri in stored)
    assert got == sorted(distinct)


@settings(max_examples=200, deadline=None)
@given(
    finest=st.integers(1, 10_000_000),
    coarsest=st.integers(1, 10_000_000),
    lods=st.integers(1, 8),
    reduction=st.floats(1.5, 8.0),
)
def test_face_targets(finest: int, coarsest: int, lods: int, reduction: float) -> None:
    targets = face_targets(finest, coarsest, MeshConfig(lods=lods, reduction=reduction))
    assert targets[0] == finest and 1 <= len(targets) <= lods
    assert all(a >= b for a, b in itertools.pairwise(targets))
    if len(targets) > 1:
        assert targets[-1] == max(1, min(coarsest, finest))


def test_partition_rule_detects_a_crossing_triangle() -> None:
    points = np.array(
        [[100, 100, 100], [40000, 100, 100], [100, 40000, 100], [32768, 5, 5], [9, 32768, 9]]
    )
    assert not partition_ok(points, np.array([[0, 1, 2]]))
    assert partition_ok(points, np.array([[0, 3, 4]]))  # on a mid-plane counts on both sides


@settings(max_examples=60, deadline=None)
@given(
    points=arrays(np.float64, st.tuples(st.integers(3, 25), st.just(3)), elements=coords),
    seed=st.integers(0, 2**32 - 1),
)
def test_weld_merges_equal_vertices_and_keeps_every_triangle(points: np.ndarray, seed: int) -> None:
    """Per-face vertex copies (shuffled, -0.0 beside 0.0) weld to one vertex per distinct
    point; every triangle whose corners differ keeps its corners, in order."""
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, len(points), (20, 3))
    copies = points[faces.reshape(-1)]
    copies[copies == 0] = rng.choice([0.0, -0.0], int((copies == 0).sum()))
    shuffle = rng.permutation(len(copies))
    split = TriangleMesh(copies[shuffle], np.argsort(shuffle).reshape(-1, 3))
    welded = weld(split)
    keep = np.array([len({tuple(points[i] + 0.0) for i in f}) == 3 for f in faces])
    used = np.unique(points[faces[keep]].reshape(-1, 3) + 0.0, axis=0)
    assert len(np.unique(welded.vertices, axis=0)) == len(welded.vertices) == len(used)
    np.testing.assert_array_equal(welded.vertices[welded.faces], points[faces[keep]] + 0.0)
