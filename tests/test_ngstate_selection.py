"""Default-visibility decisions: table-driven scenes asserting visible set and explanations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_ngstate_tree import Ann, Tree, assert_roundtrip

from cryoet_ng.summaries import Grid
from ngstate import build_state
from ngstate.mwis import exact, greedy, solve

RNG = np.random.default_rng(7)
# Layers by the head of their name, "<id> <object>" (before " · <status> · <method>").
RIBO = "101 cytosolic ribosome"
FAS = "100 fatty acid synthase complex"
CYTO = "102 cytoplasm"


def head(name: str) -> str:
    return name.split(" · ")[0]


def picks(n: int, lo=(10, 10, 4), hi=(54, 54, 28), spacing_ratio: float = 1.0) -> np.ndarray:
    """Random points inside the cytoplasm box, in voxels at tomogram spacing / ratio."""
    return RNG.uniform(lo, hi, size=(n, 3)) / spacing_ratio


def box(tree: Tree, lo=(2, 2, 0), hi=(14, 14, 8), value: float = 1.0, grid: Grid | None = None):
    cells = tree.empty_cells(grid)
    cells[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]] = value
    return cells


def shell(tree: Tree, value: float = 0.05) -> np.ndarray:
    cells = tree.empty_cells()
    cells[:, 2:14, 2:14] = value
    cells[:, 3:13, 3:13] = 0.0
    return cells


def ribosomes(tree: Tree, **kw) -> Ann:
    return Ann(
        "101", "cytosolic ribosome", object_id="GO:0022626", summary=tree.points(picks(80)), **kw
    )


def fas(tree: Tree, **kw) -> Ann:
    summary = tree.points(picks(40))
    return Ann("100", "fatty acid synthase complex", object_id="GO:0005835", summary=summary, **kw)


def cytoplasm(tree: Tree, **kw) -> Ann:
    shape = kw.pop("shape", "SegmentationMask")
    return Ann(
        "102", "cytoplasm", shape, object_id="GO:0005737", summary=tree.mask(box(tree)), **kw
    )


@dataclass
class Case:
    name: str
    scene: Callable[[Tree], None]
    visible: set[str]
    reasons: dict[str, tuple[str, ...]]  # layer -> substrings its reason must contain
    selection: dict[str, object] | None = None


def gt_vs_prediction(t: Tree) -> None:
    t.add(
        ribosomes(t, gt=True),
        Ann(
            "105",
            "cytosolic ribosome",
            object_id="GO:0022626",
            method="automated",
            summary=t.points(picks(90)),
        ),
    )


def container_vs_picks(t: Tree) -> None:
    t.add(ribosomes(t, gt=True), fas(t, gt=True), cytoplasm(t, gt=True))


def membrane_vs_picks(t: Tree) -> None:
    t.add(
        ribosomes(t),
        fas(t),
        Ann(
            "110", "membrane", "SegmentationMask", object_id="GO:0016020", summary=t.mask(shell(t))
        ),
    )


def two_objects(t: Tree) -> None:
    t.add(ribosomes(t, method="automated"), fas(t, method="automated"))


def author_override(t: Tree) -> None:
    t.add(ribosomes(t, gt=True), fas(t, gt=True, flag=False), cytoplasm(t, flag=True))


def author_only(t: Tree) -> None:
    t.add(ribosomes(t, gt=True, flag=True), fas(t, gt=True), cytoplasm(t, flag=False))


def cap(t: Tree) -> None:
    t.add(
        ribosomes(t, gt=True),
        fas(t, method="automated"),
        Ann("103", "microtubule", summary=t.points(picks(5))),
        Ann("104", "actin", method="simulated", summary=t.points(picks(5))),
    )


def missing_summary(t: Tree) -> None:
    # The container has no summary: occlusion unknown, so it is shown from metadata alone;
    # a prediction without summary still defers to ground truth of the same object.
    t.add(
        ribosomes(t, gt=True),
        fas(t),
        Ann("102", "cytoplasm", "SegmentationMask"),
        Ann("106", "cytosolic ribosome", object_id="GO:0022626", method="automated"),
    )


def mixed_spacing(t: Tree) -> None:
    # Picks stored at twice the tomogram spacing; the mask summary on a coarser grid.
    coarse = t.grid(cells=8)
    points = t.points(picks(60, spacing_ratio=2.0), spacing=2 * t.spacing)
    t.add(
        Ann(
            "101",
            "cytosolic ribosome",
            spacing=2 * t.spacing,
            gt=True,
            object_id="GO:0022626",
            summary=points,
        ),
        Ann(
            "102",
            "cytoplasm",
            "SegmentationMask",
            object_id="GO:0005737",
            summary=t.mask(box(t, (1, 1, 0), (7, 7, 4), grid=coarse), grid=coarse),
        ),
    )


def sub_parts(t: Tree) -> None:
    # Same ontology id, different descriptions: different sub-parts, both shown.
    t.add(
        Ann(
            "110",
            "membrane",
            "SegmentationMask",
            object_id="GO:0016020",
            description="plasma membrane",
            summary=t.mask(shell(t)),
        ),
        Ann(
            "111",
            "membrane",
            "SegmentationMask",
            object_id="GO:0016020",
            description="nuclear envelope",
            summary=t.mask(box(t, (6, 6, 3), (8, 8, 5), 0.1)),
        ),
    )


def oriented_over_points(t: Tree) -> None:
    t.add(
        Ann(
            "101",
            "cytosolic ribosome",
            object_id="GO:0022626",
            gt=True,
            summary=t.points(picks(30)),
        ),
        Ann(
            "108",
            "cytosolic ribosome",
            "OrientedPoint",
            object_id="GO:0022626",
            gt=True,
            summary=t.points(picks(30)),
        ),
    )


CASES = [
    Case(
        "gt-vs-prediction",
        gt_vs_prediction,
        {RIBO},
        {
            "105 cytosolic ribosome": (
                "hidden",
                "automated prediction of cytosolic ribosome",
                f"{RIBO} · ground truth · manual shown",
            )
        },
    ),
    Case(
        "container-vs-picks",
        container_vs_picks,
        {RIBO, FAS},
        {
            CYTO: ("hidden", "would occlude 2 visible layers", RIBO, FAS),
            RIBO: ("shown", "kept over", CYTO),
        },
    ),
    Case(
        "thin-membrane-vs-picks",
        membrane_vs_picks,
        {RIBO, FAS, "110 membrane"},
        {"110 membrane": ("shown", "no overlap")},
    ),
    Case("two-objects", two_objects, {RIBO, FAS}, {FAS: ("shown", "automated prediction")}),
    Case(
        "author-override",
        author_override,
        {CYTO},
        {
            # The author's flags decide; the reason also says what the automatic choice says.
            CYTO: ("shown", "author", "automatic choice differs", "would occlude"),
            FAS: ("hidden", "author", "false", "automatic choice differs (shown: ground truth"),
            RIBO: ("hidden", "inside visible", CYTO),
        },
    ),
    Case(
        "author-only",
        author_only,
        {RIBO},
        {FAS: ("hidden", "absent"), CYTO: ("hidden", "false"), RIBO: ("shown", "true")},
        {"policy": "author"},
    ),
    Case(
        "cap",
        cap,
        {RIBO, "103 microtubule"},
        {FAS: ("hidden", "cap (2)"), "104 actin": ("hidden", "cap (2)")},
        {"max_visible": 2},
    ),
    Case(
        "missing-summary",
        missing_summary,
        {RIBO, FAS, CYTO},
        {
            CYTO: ("shown", "no summary"),
            "106 cytosolic ribosome": (
                "hidden",
                f"{RIBO} · ground truth · manual shown",
                "no summary",
            ),
        },
    ),
    Case(
        "mixed-spacing",
        mixed_spacing,
        {RIBO},
        {CYTO: ("hidden", "would occlude 1 visible layer", RIBO)},
    ),
    Case("sub-parts", sub_parts, {"110 membrane", "111 membrane"}, {}),
    Case(
        "oriented-over-points",
        oriented_over_points,
        {"108 cytosolic ribosome"},
        {RIBO: ("hidden", "108 cytosolic ribosome · ground truth · manual shown")},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_selection(tmp_path: Path, case: Case) -> None:
    tree = Tree(tmp_path)
    case.scene(tree)
    catalogue = tree.build()
    built = build_state(catalogue, "10000", "TS_026", None, tree.options(**(case.selection or {})))
    decisions = {head(d.layer): d for d in built.decisions if d.rule != "image"}
    assert {n for n, d in decisions.items() if d.visible} == case.visible
    for layer, needles in case.reasons.items():
        reason = decisions[layer].reason
        for needle in needles:
            assert needle in reason, f"{layer}: {needle!r} not in {reason!r}"
    # Every layer is explained, and the state agrees with the decisions.
    assert all(d.reason for d in built.decisions)
    for layer in built.state["layers"]:
        if layer["type"] != "image":
            assert layer["visible"] == decisions[head(layer["name"])].visible
    assert_roundtrip(built.state)


def test_explanation_names_others(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    container_vs_picks(tree)
    built = build_state(tree.build(), "10000", "TS_026", None, tree.options())
    layers = {head(entry["name"]): entry for entry in built.explanation()["layers"]}
    assert {head(name) for name in layers[CYTO]["others"]} == {RIBO, FAS}
    assert layers[CYTO]["rule"] == "occludes"
    assert layers["TS_026"]["visible"] and layers["TS_026"]["rule"] == "image"


def test_ground_truth_container_loses_to_two_equal_picks(tmp_path: Path) -> None:
    # All ground truth: one container against two pick layers of the same tier.
    tree = Tree(tmp_path)
    container_vs_picks(tree)
    built = build_state(tree.build(), "10000", "TS_026", None, tree.options(policy="auto"))
    assert not next(d for d in built.decisions if head(d.layer) == CYTO).visible


def test_container_beats_one_worse_layer(tmp_path: Path) -> None:
    # A ground-truth container against a single simulated pick layer: the container wins.
    tree = Tree(tmp_path)
    tree.add(
        Ann("100", "actin", method="simulated", summary=tree.points(picks(20))),
        cytoplasm(tree, gt=True),
    )
    built = build_state(tree.build(), "10000", "TS_026", None, tree.options())
    visible = {head(d.layer) for d in built.decisions if d.visible}
    assert visible == {"TS_026", CYTO}
    actin = next(d for d in built.decisions if head(d.layer) == "100 actin")
    assert "inside visible" in actin.reason and {head(n) for n in actin.others} == {CYTO}


def _random_graph(n: int, p: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < p, 1)
    return rng.choice([1.0, 2.0, 4.0, 8.0, 16.0], n) + rng.random(n) * 0.01, upper | upper.T


def _brute(weights: np.ndarray, adj: np.ndarray) -> float:
    n, best = len(weights), 0.0
    for mask in range(1 << n):
        members = [i for i in range(n) if mask >> i & 1]
        if not any(adj[a, b] for a in members for b in members):
            best = max(best, float(weights[members].sum()))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_exact_search_is_optimal(seed: int) -> None:
    weights, adj = _random_graph(11, 0.3, seed)
    chosen = exact(weights, adj)
    assert not any(adj[a, b] for a in chosen for b in chosen)
    assert weights[chosen].sum() == pytest.approx(_brute(weights, adj))


def test_greedy_beyond_exact_limit_is_independent_and_close() -> None:
    ratios = []
    for seed in range(6):
        weights, adj = _random_graph(30, 0.1, seed)
        g = greedy(weights, adj)
        assert not any(adj[a, b] for a in g for b in g)
        ratios.append(weights[g].sum() / weights[exact(weights, adj)].sum())
        # Above the limit solve() gives the greedy answer, per connected component.
        assert (
            weights[solve(weights, adj, exact_limit=5)].sum() <= weights[exact(weights, adj)].sum()
        )
    assert min(ratios) >= 0.8, ratios


def test_exact_handles_25_candidates_quickly() -> None:
    import time

    weights, adj = _random_graph(25, 0.15, 3)
    start = time.perf_counter()
    solve(weights, adj, exact_limit=25)
    assert time.perf_counter() - start < 2.0
