"""Uncurated runs and the clutter rule (issue 15): unit tests, tree tests, the sample's TS_100.

* A tomogram none of whose files is flagged ``is_visualization_default: true`` is uncurated:
  under ``auto+author`` it gets the automatic choice; one true flag makes it curated.
* A prediction whose markers would cover ``clutter_threshold`` of a slice is not shown by
  default; ground truth and an author's true flag keep it shown, with a warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from server_support import make_config
from test_ngstate_tree import Ann, Tree, assert_roundtrip

from cryoet_ng.catalogue import Annotation, Catalogue
from cryoet_ng.config import SelectionConfig
from cryoet_ng.sample.scene import make_scene
from cryoet_ng.sample.spec import SIZES
from cryoet_ng.summaries import Grid, Occupancy
from cryoet_ng_cli import main as cli
from ngstate import StateOptions, build_state
from ngstate.api import BuiltState
from ngstate.clutter import covered_share, marker_diameter
from ngstate.curation import curation
from ngstate.selection import Context, select

RIBO, FAS, CYTO = "101 cytosolic ribosome", "100 fatty acid synthase complex", "102 cytoplasm"
NM = 1e-9


def head(name: str) -> str:
    return name.split(" · ")[0]


def picks(n: int, seed: int = 0, lo=(10, 10, 4), hi=(54, 54, 28)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, 3))


def box(tree: Tree) -> np.ndarray:
    cells = tree.empty_cells()
    cells[0:8, 2:14, 2:14] = 1.0
    return cells


def cell_scene(tree: Tree, flags: dict[str, bool | None]) -> Tree:
    """Ground-truth ribosome and FAS picks inside a ground-truth cytoplasm container."""
    return tree.add(
        Ann("101", "cytosolic ribosome", gt=True, object_id="GO:0022626",
            summary=tree.points(picks(80, 1)), flag=flags.get(RIBO)),
        Ann("100", "fatty acid synthase complex", gt=True, object_id="GO:0005835",
            summary=tree.points(picks(40, 2)), flag=flags.get(FAS)),
        Ann("102", "cytoplasm", "SegmentationMask", gt=True, object_id="GO:0005737",
            summary=tree.mask(box(tree)), flag=flags.get(CYTO)),
    )  # fmt: skip


def built(tree: Tree, **selection: object) -> BuiltState:
    state = build_state(tree.build(), "10000", "TS_026", None, tree.options(**selection))
    assert_roundtrip(state.state)
    return state


def visible(state: BuiltState) -> set[str]:
    return {head(d.layer) for d in state.decisions[1:] if d.visible}


def decision(state: BuiltState, layer: str):
    return next(d for d in state.decisions if head(d.layer) == layer)


# -- the uncurated rule ---------------------------------------------------------------------
def test_all_false_run_opens_with_the_automatic_choice(tmp_path: Path) -> None:
    state = built(cell_scene(Tree(tmp_path), {RIBO: False, FAS: False, CYTO: False}))
    # Before the rule, auto+author hid all three (an explicit false always won).
    assert visible(state) == {RIBO, FAS}
    cyto = decision(state, CYTO)
    assert cyto.rule == "occludes" and "would occlude 2 visible layers" in cyto.reason
    assert "uncurated run" in decision(state, RIBO).reason
    explained = state.explanation()["curation"]
    assert explained["curated"] is False and explained["applied"] == "auto"
    assert explained["flags"] == {"true": 0, "false": 3, "absent": 0}
    assert "uncurated" in state.messages[0]


def test_one_true_flag_makes_the_run_curated(tmp_path: Path) -> None:
    state = built(cell_scene(Tree(tmp_path), {RIBO: False, FAS: False, CYTO: True}))
    assert visible(state) == {CYTO}  # the flags, as the author set them
    assert decision(state, RIBO).rule == "author" and decision(state, CYTO).rule == "author"
    assert "the automatic choice differs" in decision(state, CYTO).reason
    explained = state.explanation()["curation"]
    assert explained["curated"] is True and explained["applied"] == "auto+author"
    assert explained["flags"] == {"true": 1, "false": 2, "absent": 0}


def test_a_true_flag_without_output_still_means_curated(tmp_path: Path) -> None:
    tree = cell_scene(Tree(tmp_path), {RIBO: False, FAS: False, CYTO: False})
    tree.add(Ann("103", "microtubule", flag=True, output=False))
    state = built(tree)
    assert visible(state) == set()  # every layer with an output is flagged false
    assert state.curation is not None and state.curation.curated
    assert [item.annotation.id for item in state.left_out] == ["103"]


@pytest.mark.parametrize(
    ("policy", "shown", "applied"),
    [
        ("auto", {RIBO, FAS}, "auto"),
        ("author", set(), "author"),
        ("auto+author", {RIBO, FAS}, "auto"),
    ],
)
def test_policies_on_an_uncurated_run(
    tmp_path: Path, policy: str, shown: set[str], applied: str
) -> None:
    state = built(cell_scene(Tree(tmp_path), {RIBO: False, FAS: False, CYTO: False}), policy=policy)
    assert visible(state) == shown
    assert state.curation is not None and state.curation.applied == applied
    if policy == "author":
        assert "only the tomogram is shown" in state.curation.reason


def test_curation_counts_flags_per_file_of_the_tomogram(tmp_path: Path) -> None:
    tree = cell_scene(Tree(tmp_path), {RIBO: None, FAS: False, CYTO: None})
    cands = built(tree).candidates
    config = SelectionConfig()
    assert not curation(cands, config).curated
    # Flags of files without an output count (gather passes every drawn file's flag).
    assert curation(cands, config, (None, False, True)).curated
    assert curation(cands, config, (False, False)).applied == "auto"
    assert curation(cands, config, ()).applied == "auto"


# -- the clutter measure --------------------------------------------------------------------
def uniform(grid: Grid, per_cell: float) -> Occupancy:
    return Occupancy(grid, "count", np.full(grid.size, per_cell))


def test_uniform_density_covers_one_minus_exp_of_the_volume_fraction() -> None:
    grid = Grid((0.0, 0.0, 0.0), 100 * NM, (4, 4, 4))
    d = 20 * NM
    for per_cell in (1, 10, 100):
        fraction = per_cell * math.pi * d**3 / 6 / (100 * NM) ** 3
        share = covered_share(uniform(grid, per_cell), d)
        assert share == pytest.approx(1 - math.exp(-fraction))


def test_a_crowd_in_one_corner_covers_little_of_any_slice() -> None:
    grid = Grid((0.0, 0.0, 0.0), 100 * NM, (8, 8, 8))
    values = np.zeros(grid.size)
    values[0] = 10_000  # one cell of 512, packed
    share = covered_share(Occupancy(grid, "count", values), 10 * NM)
    packed = 1 - math.exp(-10_000 * math.pi * (10 * NM) ** 3 / 6 / (100 * NM) ** 3)
    assert share == pytest.approx(packed / 64)  # that cell is 1/64 of its slab


def test_markers_larger_than_cells_are_pooled() -> None:
    # One pick per 4x4x4 cells: 40 nm markers in 10 nm cells cover a share of their
    # block (pi/6 of it by volume), not 100% of the cell holding the pick.
    grid = Grid((0.0, 0.0, 0.0), 10 * NM, (16, 4, 4))
    values = np.zeros((4, 4, 16))
    values[0, 0, ::4] = 1
    share = covered_share(Occupancy(grid, "count", values.ravel()), 40 * NM)
    assert share == pytest.approx(1 - math.exp(-math.pi / 6))


def test_cells_beyond_the_tomogram_do_not_dilute() -> None:
    grid = Grid((0.0, 0.0, 0.0), 100 * NM, (4, 4, 4))
    whole = covered_share(uniform(grid, 5), 30 * NM)
    # A tomogram of 3.5 cells per axis: the last cells are half inside, hold half as many.
    values = np.full((4, 4, 4), 5.0)
    values[-1, :, :] /= 2
    values[:, -1, :] /= 2
    values[:, :, -1] /= 2
    extent = (350 * NM,) * 3
    clipped = covered_share(Occupancy(grid, "count", values.ravel()), 30 * NM, extent)
    assert clipped == pytest.approx(whole, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 500), min_size=64, max_size=64),
    diameter=st.floats(1.0, 80.0),
    more=st.integers(1, 50),
)
def test_share_is_a_share_and_grows_with_count_and_size(
    counts: list[int], diameter: float, more: int
) -> None:
    grid = Grid((0.0, 0.0, 0.0), 25 * NM, (4, 4, 4))
    occ = Occupancy(grid, "count", np.asarray(counts, float))
    share = covered_share(occ, diameter * NM)
    assert 0.0 <= share <= 1.0
    denser = Occupancy(grid, "count", np.asarray(counts, float) + more)
    assert covered_share(denser, diameter * NM) >= share - 1e-12
    assert covered_share(occ, diameter * 1.5 * NM) >= share - 1e-12


# -- the clutter rule in the choice ---------------------------------------------------------
def crowded_scene(tree: Tree, n: int, **prediction: object) -> Tree:
    """Ground-truth ribosomes and ``n`` automated nucleosome picks in the same box."""
    return tree.add(
        Ann("100", "cytosolic ribosome", gt=True, object_id="GO:0022626",
            summary=tree.points(picks(30, 3))),
        Ann("101", "nucleosome", object_id="GO:0000786", summary=tree.points(picks(n, 4)),
            **{"method": "automated", **prediction}),  # type: ignore[arg-type]
    )  # fmt: skip


NUC, RIBO_GT = "101 nucleosome", "100 cytosolic ribosome"


@pytest.mark.parametrize(
    ("n", "threshold", "hidden"),
    [(20, 0.3, False), (20_000, 0.3, True), (20_000, 0.95, False), (200, 0.05, True)],
)
def test_crowded_prediction_hidden_by_count_and_threshold(
    tmp_path: Path, n: int, threshold: float, hidden: bool
) -> None:
    state = built(crowded_scene(Tree(tmp_path), n), clutter_threshold=threshold)
    nuc = decision(state, NUC)
    assert nuc.clutter is not None
    assert (nuc.clutter >= threshold) is hidden
    assert nuc.visible is not hidden
    assert decision(state, RIBO_GT).visible
    if hidden:
        assert nuc.rule == "clutter" and "too crowded to show by default" in nuc.reason
        assert f"{n:,} markers" in nuc.reason and f"{threshold:.0%} clutter threshold" in nuc.reason


def test_marker_diameter_from_metadata_else_the_configured_fallback() -> None:
    def annotation(obj: dict[str, object]) -> Annotation:
        return Annotation("101", 13.48, Path("/absent/101/x-1.0.json"), {"annotation_object": obj})

    assert marker_diameter(annotation({"name": "x", "diameter": 250}), 10.0) == (250.0, "metadata")
    assert marker_diameter(annotation({"name": "x", "diameter": 0}), 12.0) == (120.0, "fallback")
    assert marker_diameter(annotation({"name": "x"}), 10.0) == (100.0, "fallback")


def test_marker_diameter_decides_crowding(tmp_path: Path) -> None:
    # 50 picks are sparse at 10 nm and crowd the slice at 40 nm.
    sparse = built(crowded_scene(Tree(tmp_path / "a"), 50))
    assert decision(sparse, NUC).visible
    larger = built(crowded_scene(Tree(tmp_path / "b"), 50), clutter_diameter_nm=40.0)
    assert (
        decision(larger, NUC).rule == "clutter"
        and "40 nm, fallback" in decision(larger, NUC).reason
    )


@pytest.mark.parametrize("policy", ["auto+author", "author"])
def test_author_true_flag_shows_crowded_picks_with_a_warning(tmp_path: Path, policy: str) -> None:
    state = built(crowded_scene(Tree(tmp_path), 20_000, flag=True), policy=policy)
    nuc = decision(state, NUC)
    assert nuc.visible and nuc.rule == "author"
    assert nuc.warnings and "warning: crowded" in nuc.reason
    assert nuc.reason.endswith(nuc.warnings[-1])  # warnings come last
    if policy == "auto+author":
        assert (
            "the automatic choice differs (hidden: automated prediction too crowded" in nuc.reason
        )


def test_crowded_ground_truth_stays_shown_with_a_warning(tmp_path: Path) -> None:
    state = built(crowded_scene(Tree(tmp_path), 20_000, gt=True))
    nuc = decision(state, NUC)
    assert nuc.visible and "warning: crowded" in nuc.reason


def test_clutter_without_summary_uses_object_count(tmp_path: Path) -> None:
    tree = Tree(tmp_path).add(
        Ann("101", "nucleosome", method="automated", object_id="GO:0000786"),
    )
    state = build_state(tree.build(), "10000", "TS_026", None, tree.options())
    # Tree writes object_count 3: nowhere near crowded; the same with 100,000 is.
    assert decision(state, NUC).visible
    cands = state.candidates
    cands[0].annotation.metadata["object_count"] = 100_000
    extent = tuple(n * tree.spacing * 1e-10 for n in tree.size)
    again = select(cands, SelectionConfig(), Context(extent_m=extent))  # type: ignore[arg-type]
    assert again[0].rule == "clutter" and "object_count spread over the tomogram" in again[0].reason


# -- the sample's crowded run, at both sizes -------------------------------------------------
@pytest.mark.parametrize("size", ["test", "demo"])
def test_crowded_run_geometry_hides_the_prediction_at_both_sizes(tmp_path: Path, size: str) -> None:
    """TS_100's layout at each sample size: the automated picks fill the cell's cytoplasm
    (uniformly inside the cell ellipsoid, as ``sample.generate._crowd`` lays them out), the
    ground-truth ribosomes are few; every flag false (uncurated)."""
    spec = SIZES[size]
    scene = make_scene(spec, np.random.default_rng([0, 2]))
    rng = np.random.default_rng(5)
    size_xyz = np.asarray(scene.size_xyz, float)
    probe = rng.uniform(0, 1, (spec.many_points * 4, 3)) * (size_xyz - 1)
    inside = probe[scene.cell_distance(probe) < -3][: spec.many_points]
    assert len(inside) == spec.many_points
    tree = Tree(tmp_path, size=scene.size_xyz)
    tree.add(
        Ann("100", "cytosolic ribosome", gt=True, object_id="GO:0022626", flag=False,
            summary=tree.points(scene.ribosomes)),
        Ann("101", "nucleosome", method="automated", object_id="GO:0000786", flag=False,
            summary=tree.points(inside)),
    )  # fmt: skip
    state = built(tree)
    nuc, ribo = decision(state, NUC), decision(state, RIBO_GT)
    print(f"\n{size}: nucleosome picks cover {nuc.clutter:.0%}, ribosomes {ribo.clutter:.1%}")
    assert not nuc.visible and nuc.rule == "clutter"
    assert ribo.visible and not ribo.warnings


def test_sample_ts_100_opens_without_the_automated_picks(
    copy_sample: Callable[[Path], Path], tmp_path: Path
) -> None:
    """The real sample run (test size: 20,000 picks), precomputed, through the CLI and HTTP."""
    from server import create_app

    root = copy_sample(tmp_path / "data")
    assert cli(["precompute", str(root), "--runs", "TS_100", "--workers", "1"]) == 0
    catalogue = Catalogue.scan(root)
    options = StateOptions("http://127.0.0.1:8000/data", root, root)
    state = build_state(catalogue, "10001", "TS_100", None, options)
    nuc = next(d for d in state.decisions if d.layer.startswith("101 nucleosome"))
    assert not nuc.visible and nuc.rule == "clutter" and "20,000 markers" in nuc.reason
    assert state.curation is not None and not state.curation.curated
    app = create_app(make_config(root, str(tmp_path / "states")))
    explained = app.test_client().get("/explain/10001/TS_100").json
    row = next(x for x in explained["layers"] if x["name"] == nuc.layer)
    assert row["visible"] is False and "too crowded" in row["reason"]
    assert explained["curation"]["curated"] is False
    layers = {x["name"]: x["visible"] for x in state.state["layers"]}
    assert layers[nuc.layer] is False
    assert layers["100 cytosolic ribosome · ground truth · manual"] is True
