"""Mesh layers in viewer states: particle models in place of the bare picks, triangular
meshes as segmentation layers, closed meshes in the occlusion rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_ngstate_tree import Ann, Tree, assert_roundtrip

from cryoet_ng.layout import ORIENTED_MESH
from cryoet_ng.sample.outputs import write_output
from cryoet_ng.summaries import Occupancy, Summary
from ngstate import build_state


def _mesh_summary(tree: Tree, fractions_zyx: np.ndarray, closed: bool, count: int = 1) -> Summary:
    grid = tree.grid()
    occupancy = Occupancy(grid, "fraction", np.asarray(fractions_zyx, float).ravel())
    return Summary("mesh", count, None, occupancy, extra={"closed": closed})


def _with_models(tree: Tree, flag: bool | None = None) -> Tree:
    rng = np.random.default_rng(3)
    pts = tree.points(rng.uniform(5, 25, (30, 3)))
    tree.add(
        Ann("101", "cytosolic ribosome", summary=tree.points(rng.uniform(30, 60, (20, 3)))),
        Ann("102", "ATP synthase", "OrientedPoint", summary=pts, flag=flag),
    )
    return tree


def _write_models(tree: Tree, summary: Summary) -> None:
    catalogue = tree.build()
    run = catalogue.run(tree.dataset, tree.run)
    assert run is not None
    annotation = next(a for a in run.annotations if a.id == "102")
    write_output(tree.out, run, annotation, ORIENTED_MESH, summary=summary)


def _layer(state: dict, output_suffix: str) -> dict:
    """The one layer whose source is an output folder ending in ``output_suffix``."""
    (found,) = [
        layer
        for layer in state["layers"]
        if (layer["source"] if isinstance(layer["source"], str) else layer["source"]["url"])
        .rstrip("/")
        .endswith(output_suffix)
    ]
    return found


@pytest.mark.parametrize("policy", ["auto", "author", "auto+author"])
def test_particle_models_are_shown_in_place_of_the_bare_picks(tmp_path: Path, policy: str) -> None:
    tree = _with_models(Tree(tmp_path), flag=True)
    _write_models(tree, _mesh_summary(tree, tree.empty_cells() + 0.001, closed=True, count=30))
    built = build_state(tree.build(), "10000", "TS_026", "100", tree.options(policy=policy))
    assert_roundtrip(built.state)
    models, picks = _layer(built.state, "_orientedmesh"), _layer(built.state, "_orientedpoint")
    models_name, picks_name = models["name"], picks["name"]
    # Named for people: the shape words tell the two forms of one annotation apart.
    assert models_name.startswith("102 ATP synthase particle models · ")
    assert picks_name.startswith("102 ATP synthase oriented picks · ")
    assert models["type"] == "segmentation" and picks["type"] == "annotation"
    assert models["source"]["url"].endswith("-atp_synthase-1.0_orientedmesh")
    assert models["source"]["subsources"]["mesh"] is True
    assert models["meshRenderScale"] == 4.0  # the portal's, for oriented meshes
    assert models["segments"] == ["1"]
    # One thing drawn two ways: the models take the picks' colour.
    assert models["segmentDefaultColor"] == picks["annotationColor"]
    assert models["visible"] is True and picks["visible"] is False
    decisions = {d.layer: d for d in built.decisions}
    assert decisions[picks_name].rule == "models" and decisions[picks_name].others == (models_name,)
    assert f"drawn as particle models by {models_name} (shown)" in decisions[picks_name].reason
    assert f"in place of the bare picks {picks_name}" in decisions[models_name].reason


def test_without_models_the_picks_are_shown(tmp_path: Path) -> None:
    tree = _with_models(Tree(tmp_path))
    built = build_state(tree.build(), "10000", "TS_026", "100", tree.options())
    assert not [x for x in built.state["layers"] if "orientedmesh" in str(x["source"])]
    assert _layer(built.state, "_orientedpoint")["visible"] is True


def test_models_hidden_by_the_author_keep_the_picks_hidden(tmp_path: Path) -> None:
    tree = _with_models(Tree(tmp_path), flag=False)
    _write_models(tree, _mesh_summary(tree, tree.empty_cells(), closed=True, count=30))
    built = build_state(tree.build(), "10000", "TS_026", "100", tree.options(policy="author"))
    models, picks = _layer(built.state, "_orientedmesh"), _layer(built.state, "_orientedpoint")
    assert models["visible"] is False and picks["visible"] is False
    decisions = {d.layer: d for d in built.decisions}
    assert "(itself hidden)" in decisions[picks["name"]].reason


@pytest.mark.parametrize("closed", [True, False])
def test_a_closed_mesh_takes_part_in_occlusion(tmp_path: Path, closed: bool) -> None:
    tree = Tree(tmp_path)
    inside = tree.empty_cells()
    inside[:4, :4, :4] = 1.0  # z, y, x cells: the first 4x4x4 block, filled by the mesh
    cell_voxels = tree.grid().cell_size / (tree.spacing * 1e-10)
    rng = np.random.default_rng(5)
    pts = tree.points(rng.uniform(0.5, 3.5, (40, 3)) * cell_voxels)  # all inside the block
    tree.add(
        Ann("110", "vesicle", "TriangularMesh", summary=_mesh_summary(tree, inside, closed)),
        Ann("111", "ribosome", summary=pts),
    )
    built = build_state(tree.build(), "10000", "TS_026", "100", tree.options())
    assert_roundtrip(built.state)
    mesh, points = _layer(built.state, "_triangularmesh"), _layer(built.state, "_point")
    assert mesh["type"] == "segmentation" and mesh["meshRenderScale"] == 2.0
    assert mesh["source"]["url"].endswith("-vesicle-1.0_triangularmesh")
    decisions = {d.layer: d for d in built.decisions}
    if closed:  # the surface encloses the picks: one of the two is hidden, and why
        assert mesh["visible"] is False and points["visible"] is True
        assert decisions[mesh["name"]].rule == "occludes"
        assert f"would occlude 1 visible layer: {points['name']}" in (
            decisions[mesh["name"]].reason
        )
    else:  # an open sheet encloses nothing
        assert mesh["visible"] is True and points["visible"] is True
