"""Viewer-state content, colours, bad input, CLI."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_ngstate_tree import DATA_URL, Ann, Tree, assert_roundtrip

import cryoet_ng_cli as cli
from cryoet_ng.catalogue import Catalogue
from cryoet_ng.instance_colours import INSTANCE_PALETTE, instance_colour, instance_colours_rgb
from ngstate import NotFoundError, build_state, state_inputs_mtime
from ngstate.colors import (
    MIN_DISTANCE,
    PALETTE,
    ColourKey,
    assign,
    distance,
    instance_label_colours,
    preferred_slot,
)


def _basic(tree: Tree) -> Tree:
    rng = np.random.default_rng(1)
    pts = tree.points(rng.uniform(5, 25, (20, 3)))
    return tree.add(
        Ann("101", "cytosolic ribosome", gt=True, summary=pts),
        Ann("102", "ribosome", "OrientedPoint", summary=pts),
        Ann("103", "membrane", "InstanceSegmentation", summary=pts),
        Ann(
            "104",
            "vesicle",
            "InstanceSegmentationMask",
            summary=tree.mask(tree.empty_cells() + 0.01, labels={1: 5, 2: 7, 9: 3}),
        ),
    )


def layers_by_name(state: dict) -> dict[str, dict]:
    return {layer["name"]: layer for layer in state["layers"]}


def test_layers_sources_and_global_state(tmp_path: Path) -> None:
    tree = _basic(Tree(tmp_path))
    built = build_state(tree.build(), "10000", "TS_026", "100", tree.options())
    state = built.state
    assert_roundtrip(state)
    # Points first, then the tomogram, then masks (README: the restore-order bug).
    assert [layer["name"] for layer in state["layers"]] == [
        "101 cytosolic ribosome · ground truth · manual",
        "102 ribosome · prediction · manual",
        "103 membrane · prediction · manual",
        "TS_026",
        "104 vesicle · prediction · manual",
    ]
    layers = layers_by_name(state)
    image = layers["TS_026"]
    assert image["source"] == {
        "url": f"zarr://{DATA_URL}/10000/TS_026/Reconstructions/VoxelSpacing13.480/Tomograms/100/TS_026.zarr",
        "subsources": {"default": True},  # no "bounds" box
        "enableDefaultSubsources": False,
    }
    assert "#uicontrol invlerp contrast(range=[-1.5, 2.5]" in image["shader"]
    assert (
        "#uicontrol invlerp contrast_3D(range=[0, 3], window=[-3, 6], clamp=false)"
        in (image["shader"])
    )
    assert "#uicontrol bool invert_contrast_3D checkbox(default=true)" in image["shader"]
    assert "#uicontrol bool hide_outside_limits_3D checkbox(default=false)" in image["shader"]
    assert (image["blend"], image["opacity"], image["volumeRendering"]) == ("additive", 1.0, "off")
    assert (image["volumeRenderingGain"], image["volumeRenderingDepthSamples"]) == (-1.5, 128)
    assert (image["tab"], image["codeVisible"]) == ("rendering", False)
    prefix = f"precomputed://{DATA_URL}/10000/TS_026/Reconstructions/VoxelSpacing13.480/NeuroglancerPrecompute/"
    ribosome = layers["101 cytosolic ribosome · ground truth · manual"]
    assert ribosome["source"]["url"] == prefix + "101-cytosolic_ribosome-1.0_point"
    assert ribosome["source"]["subsources"] == {"default": True}
    assert "setPointMarkerSize" in ribosome["shader"] and "defaultColor()" in ribosome["shader"]
    # No ontology id, no metadata diameter: the configured fallback, 10 nm.
    assert "diameter_nm slider(min=1, max=100, step=0.5, default=10.0)" in ribosome["shader"]
    assert "prop_line_color()" in layers["102 ribosome · prediction · manual"]["shader"]
    # Instance points: per-instance colours.
    assert "prop_color()" in layers["103 membrane · prediction · manual"]["shader"]
    seg = layers["104 vesicle · prediction · manual"]
    assert seg["segments"] == ["1", "2", "9"]
    assert seg["segmentColors"] == {str(n): instance_colour(n) for n in (1, 2, 9)}
    assert seg["source"]["subsources"] == {"default": True, "mesh": True, "properties": True}
    assert (seg["selectedAlpha"], seg["notSelectedAlpha"], seg["hoverHighlight"]) == (1.0, 0, False)
    assert state["dimensions"] == {a: [1.348e-09, "m"] for a in "xyz"}
    assert state["position"] == [32.0, 32.0, 16.0]
    assert state["crossSectionScale"] == pytest.approx(64 / 400)
    assert state["projectionOrientation"] == pytest.approx([0.3826834, 0, 0, 0.9238795], abs=1e-6)
    assert state["title"] == "TS_026 · dataset 10000 · tomogram 100"
    # Oriented ribosome: 10 nm, axes 1.5 diameters: 5 + 15 nm = 14.8 voxels, plus one.
    assert state["crossSectionDepth"] == pytest.approx(15.8)
    assert state["selectedLayer"] == {"layer": "TS_026", "visible": True, "side": "left", "row": 1}
    assert state["layerListPanel"] == {"visible": True, "side": "left", "row": 0}
    assert state["toolPalettes"]["Position"]["query"] == "type:dimension"
    assert state["layout"] == "4panel" and state["crossSectionBackgroundColor"] == "#000000"
    colours = [
        layer.get("annotationColor") or layer.get("segmentDefaultColor")
        for layer in state["layers"]
        if layer["type"] != "image"
    ]
    assert len(set(colours)) == 4 and all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)
    text = json.dumps(state)
    assert "_" + "private" not in text and "deposition_id" not in text


def test_tomogram_first_order_and_closed_side_panel(tmp_path: Path) -> None:
    import dataclasses

    tree = _basic(Tree(tmp_path))
    options = tree.options()
    style = dataclasses.replace(
        options.style, layer_order="tomogram-first", layer_side_panel=False, position_palette=False
    )
    built = build_state(
        tree.build(), "10000", "TS_026", "100", dataclasses.replace(options, style=style)
    )
    assert_roundtrip(built.state)
    assert built.state["layers"][0]["name"] == "TS_026"
    assert built.state["selectedLayer"]["visible"] is False
    assert "toolPalettes" not in built.state


def test_particle_diameter_metadata_then_table_then_fallback(tmp_path: Path) -> None:
    tree = Tree(tmp_path).add(
        Ann("101", "ribosome", object_id="GO:0022626", summary=None),  # table: 30 nm
        Ann("102", "nucleosome", object_id="go:0000786", summary=None),  # table, any case
        Ann("103", "mystery complex", object_id="GO:9999999", summary=None),  # fallback
        Ann("104", "ribosome", object_id="GO:0022626", diameter=216.0, summary=None),
    )
    built = build_state(tree.build(), "10000", "TS_026", None, tree.options())
    defaults = {
        name: float(re.search(r"diameter_nm slider\(.*default=([0-9.]+)\)", layer["shader"])[1])
        for name, layer in layers_by_name(built.state).items()
        if layer["type"] == "annotation"
    }
    assert defaults == {
        "101 ribosome · prediction · manual": 30.0,
        "102 nucleosome · prediction · manual": 11.0,
        "103 mystery complex · prediction · manual": 10.0,
        "104 ribosome · prediction · manual": 21.6,
    }
    # The shader converts nm to the annotation's voxels (13.48 Å).
    assert "const float UNITS_PER_NM = 0.74184;" in built.state["layers"][0]["shader"]


def test_mask_enclosing_shown_points_gets_a_see_through_mesh(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    shape_zyx = tree.grid().shape[::-1]
    zyx = np.indices(shape_zyx).astype(float)
    half = np.asarray(shape_zyx, dtype=float)[:, None, None, None] / 2
    radius = np.sqrt((((zyx + 0.5 - half) / half) ** 2).sum(axis=0))  # 1 at the box faces
    shell = ((radius > 0.75) & (radius < 0.95)).astype(float) * 0.2  # a closed thin shell
    inside = tree.points(np.asarray(tree.size) / 2 + np.random.default_rng(0).normal(0, 2, (30, 3)))
    tree.add(
        Ann("101", "ribosome", gt=True, summary=inside),
        Ann(
            "102", "membrane", "SegmentationMask", object_id="GO:0005886", summary=tree.mask(shell)
        ),
        Ann(
            "103",
            "far blob",
            "SegmentationMask",
            summary=tree.mask(np.where(radius > 1.2, 0.3, 0.0)),
        ),
    )
    built = build_state(tree.build(), "10000", "TS_026", None, tree.options())
    layers = layers_by_name(built.state)
    assert layers["101 ribosome · ground truth · manual"]["visible"]
    assert layers["102 membrane · prediction · manual"]["visible"]
    assert layers["102 membrane · prediction · manual"]["objectAlpha"] == pytest.approx(0.3)
    assert layers["103 far blob · prediction · manual"]["objectAlpha"] == 1.0


def test_binned_annotation_lands_on_tomogram_voxels(tmp_path: Path) -> None:
    tree = Tree(tmp_path).add(Ann("101", "ribosome", spacing=2 * 13.48, summary=None))
    built = build_state(tree.build(), "10000", "TS_026", None, tree.options())
    assert_roundtrip(built.state)
    source = layers_by_name(built.state)["101 ribosome · prediction · manual"]["source"]
    assert "VoxelSpacing26.960" in source["url"]
    transform = source["transform"]
    assert transform["outputDimensions"] == built.state["dimensions"]
    matrix = np.asarray(transform["matrix"])
    binned = np.array([3.0, 5.0, 7.0])
    # Neuroglancer's rule (checked in the real viewer by tests/test_browser.py): source
    # coordinates are converted to physical units by the source's own scale, the matrix
    # applies in those units, and the result is expressed in the output dimensions.
    physical = matrix[:, :3] @ (binned * 2 * 13.48e-10) + matrix[:, 3]
    output_scale = np.array([transform["outputDimensions"][a][0] for a in "xyz"])
    assert physical / output_scale == pytest.approx(2 * binned)
    # The camera is not scaled by the spacing ratio (the portal's quirk).
    assert built.state["position"] == [32.0, 32.0, 16.0]


def test_missing_inputs_are_reported_not_fatal(tmp_path: Path) -> None:
    tree = Tree(tmp_path, zarr=False, stats=None).add(
        Ann("101", "cytosolic ribosome", output=False),
        Ann("102", "vesicle", "SegmentationMask", summary=None),
    )
    built = build_state(tree.build(), "10000", "TS_026", None, tree.options())
    assert_roundtrip(built.state)
    vesicle = "102 vesicle · prediction · manual"
    assert [layer["name"] for layer in built.state["layers"]] == [vesicle]
    assert "selectedLayer" not in built.state
    text = "\n".join(built.messages)
    assert "no OME-Zarr" in text and "101 (cytosolic ribosome) Point" in text and "missing" in text
    decision = built.explanation()["layers"][0]
    assert decision["name"] == vesicle and "no summary" in decision["reason"]


def test_no_statistics_leaves_contrast_to_neuroglancer(tmp_path: Path) -> None:
    tree = Tree(tmp_path, stats=None)
    built = build_state(tree.build(), "10000", "TS_026", None, tree.options())
    assert_roundtrip(built.state)
    assert "#uicontrol invlerp contrast\n" in built.state["layers"][0]["shader"]
    assert any("no MRC header statistics" in m for m in built.messages)


@pytest.mark.parametrize(
    ("dataset", "run", "tomogram", "needle"),
    [
        ("99", "TS_026", None, "unknown dataset '99'"),
        ("10000", "TS_999", None, "unknown run 'TS_999'"),
        ("10000", "TS_026", "7", "unknown tomogram '7' (known: 100)"),
    ],
)
def test_unknown_ids(
    tmp_path: Path, dataset: str, run: str, tomogram: str | None, needle: str
) -> None:
    tree = Tree(tmp_path)
    catalogue = tree.build()
    with pytest.raises(NotFoundError, match=re.escape(needle)):
        build_state(catalogue, dataset, run, tomogram, tree.options())


def test_inputs_mtime_grows_when_a_summary_changes(tmp_path: Path) -> None:
    import os

    tree = _basic(Tree(tmp_path))
    catalogue = tree.build()
    before = state_inputs_mtime(catalogue, "10000", "TS_026", None, tree.options())
    summary = next(tree.out.rglob("101-*.summary.json"))
    os.utime(summary, (before + 10, before + 10))
    assert state_inputs_mtime(catalogue, "10000", "TS_026", None, tree.options()) == before + 10


# -- colours --------------------------------------------------------------------------------
def _keys(n: int) -> list[ColourKey]:
    return [ColourKey(f"GO:{i % 5}|obj{i % 5}|{100 + i}|Point", (100 + i, "")) for i in range(n)]


def test_palette_is_distinct_and_readable_on_black() -> None:
    assert len(set(PALETTE)) == len(PALETTE) >= 20
    for colour in PALETTE:
        r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        assert 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.25, colour  # relative luminance


def test_colours_distinct_up_to_palette_size() -> None:
    colours = assign(_keys(len(PALETTE)))
    assert len(set(colours)) == len(PALETTE)


@pytest.mark.parametrize("offset", [0, 100, 1000])
def test_a_dozen_layers_get_perceptually_distinct_colours(offset: int) -> None:
    # Not only different slots: no two look alike (light lavender next to lavender).
    keys = [ColourKey(f"GO:{offset + i}|object {i}|{100 + i}|Point", (i, "")) for i in range(12)]
    colours = assign(keys)
    closest = min(distance(a, b) for a, b in itertools.combinations(colours, 2))
    assert closest >= MIN_DISTANCE


def test_adding_a_newer_layer_keeps_every_colour() -> None:
    keys = _keys(15)
    before = assign(keys[:-1])
    assert assign(keys)[:-1] == before
    assert assign(list(reversed(keys)))[::-1] == assign(keys)  # input order is irrelevant


@pytest.mark.parametrize("removed", range(15))
def test_removing_a_layer_keeps_colours_of_layers_at_their_own_slot(removed: int) -> None:
    keys = _keys(15)
    full = assign(keys)
    rest = keys[:removed] + keys[removed + 1 :]
    after = dict(zip([k.identity for k in rest], assign(rest), strict=True))
    for key, colour in zip(keys, full, strict=True):
        if key is keys[removed]:
            continue
        if colour == PALETTE[preferred_slot(key.identity)]:
            assert after[key.identity] == colour, key


def test_state_colours_survive_a_new_annotation(tmp_path: Path) -> None:
    first = _basic(Tree(tmp_path / "a"))
    built = build_state(first.build(), "10000", "TS_026", None, first.options())
    second = _basic(Tree(tmp_path / "b")).add(Ann("120", "actin", summary=None))
    again = build_state(second.build(), "10000", "TS_026", None, second.options())

    def colours(state: dict) -> dict[str, str]:
        return {
            x["name"]: x.get("annotationColor") or x.get("segmentDefaultColor")
            for x in state["layers"][1:]
        }

    old, new = colours(built.state), colours(again.state)
    assert {k: new[k] for k in old} == old


def test_instance_palette_first_40_labels_pairwise_distinct() -> None:
    colours = [instance_colour(n) for n in range(1, 41)]
    closest = min(distance(a, b) for a, b in itertools.combinations(colours, 2))
    assert closest >= 25.0, closest
    every = min(distance(a, b) for a, b in itertools.combinations(INSTANCE_PALETTE, 2))
    assert every >= 25.0 and len(INSTANCE_PALETTE) >= 40


def test_instance_mask_and_instance_points_share_label_colours() -> None:
    labels = np.array([1, 2, 3, 9, 40, 47, 200])
    mask = instance_label_colours(labels.tolist())
    points = ["#" + bytes(c).hex() for c in instance_colours_rgb(labels)]
    assert [mask[str(n)] for n in labels] == points
    assert instance_colour(47) == instance_colour(1)  # beyond the palette, colours repeat


# -- CLI ------------------------------------------------------------------------------------
def test_cli_state_json_and_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = _basic(Tree(tmp_path))
    tree.build()
    args = ["state", str(tree.data), "10000", "TS_026", "--out", str(tree.out)]
    assert cli.main(args) == 0
    state = json.loads(capsys.readouterr().out)
    assert_roundtrip(state)
    image = layers_by_name(state)["TS_026"]
    assert image["source"]["url"].startswith("zarr://http://127.0.0.1:8000/data/10000/")
    assert cli.main([*args, "--explain"]) == 0
    out = capsys.readouterr().out
    assert "101 cytosolic ribosome · ground truth · manual" in out and "shown: ground truth" in out


def test_cli_unknown_run_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = Tree(tmp_path)
    tree.build()
    assert cli.main(["state", str(tree.data), "10000", "nope"]) != 0
    assert "unknown run nope in dataset 10000 (known: TS_026)" in capsys.readouterr().err


def test_cli_export_states(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = _basic(Tree(tmp_path))
    tree.build()
    base = ["export-states", str(tree.data), "--out", str(tree.out)]
    # Without data_url the files would point at this machine: refused unless asked for.
    assert cli.main(base) == 2
    assert "data_url is not set" in capsys.readouterr().err
    assert not list(tree.out.rglob("*-neuroglancer_config.json"))
    assert cli.main([*base, "--data-url", "https://files.example.org/"]) == 0
    files = list(tree.out.rglob("*-neuroglancer_config.json"))
    image = layers_by_name(json.loads(files[0].read_text()))["TS_026"]
    assert image["source"]["url"].startswith("zarr://https://files.example.org/10000/")
    capsys.readouterr()
    assert cli.main([*base, "--local-urls"]) == 0
    files = list(tree.out.rglob("*-neuroglancer_config.json"))
    assert [f.name for f in files] == ["100-neuroglancer_config.json"]
    assert "NeuroglancerPrecompute" in str(files[0])
    assert_roundtrip(json.loads(files[0].read_text()))
    assert "1 state file written" in capsys.readouterr().out
    assert not list(tree.out.rglob(".tmp-*"))


def test_catalogue_scan_of_tree_has_no_warnings(tmp_path: Path) -> None:
    tree = _basic(Tree(tmp_path))
    tree.build()
    assert not Catalogue.scan(tree.data).warnings
