"""Agreement of the automatic choice with the portal curators' is_visualization_default.

Corpus: tests/data/curator_choices.json, 32 dataset configs of the portal backend
(182 layers, one per annotation source shape), transcribed by hand with provenance. Real
datasets carry no occupancy summaries here, so the metadata-only path is measured.
Figures measured when the rules were added (every third dataset held out):

=====================================  =======  ======  ========
policy                                 all      design  held out
=====================================  =======  ======  ========
auto before (no cap)                   0.813    0.797   0.864
auto now (no cap)                      0.940    0.920   1.000
auto now, old cap of 12                0.819    0.768   0.977
auto now, default cap of 32            0.940    0.920   1.000
show everything                        0.824    0.812   0.864
one per object by rank                 0.830    0.819   0.864
ground truth only                      0.632    0.580   0.795
curator-recommended only               0.637    0.609   0.727
=====================================  =======  ======  ========

The curators never cap: 10492 shows 30 layers, 10512 15, 10441 13.

Dataset 10000 (S. pombe, DeePiCt; ingestion_tools/dataset_configs/10000.yaml): 15
annotations, all ground truth + hybrid, curator flags as published. The geometry is a
plausible cell on the 16-cell occupancy grid, written down before looking at the result:
nucleus on the left with its envelope, cytosol elsewhere (organelle interiors excluded),
organelles as blocks, ER sheets and a microtubule as thin structures, an all-membranes
mask and an all-lumen mask, ribosome and FAS picks in the cytosol.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_ngstate_tree import Ann, Tree, assert_roundtrip

from cryoet_ng.catalogue import POINT_SHAPES, Annotation, AnnotationFile
from cryoet_ng.config import SelectionConfig
from ngstate import build_state
from ngstate.candidates import Candidate, _unique_names, layer_name
from ngstate.selection import select

CORPUS = Path(__file__).parent / "data" / "curator_choices.json"

# name, ontology id, shape, curator flag (10000.yaml), curator-recommended
PORTAL_10000 = [
    ("fatty acid synthase complex", "GO:0005835", "Point", False, True),
    ("cytosolic ribosome", "GO:0022626", "Point", True, True),
    ("cytoplasm", "GO:0005737", "SegmentationMask", False, True),
    ("mitochondrion", "GO:0005739", "SegmentationMask", True, True),
    ("vesicle", "GO:0031982", "SegmentationMask", False, True),
    ("microtubule", "GO:0005874", "SegmentationMask", True, True),
    ("endoplasmic reticulum", "GO:0005783", "SegmentationMask", True, True),
    ("nuclear envelope", "GO:0005635", "SegmentationMask", True, True),
    ("nucleus", "GO:0005634", "SegmentationMask", False, True),
    ("vacuole", "GO:0005773", "SegmentationMask", False, True),
    ("lipid droplet", "GO:0005811", "SegmentationMask", False, True),
    ("Golgi apparatus", "GO:0005794", "SegmentationMask", True, True),
    ("multivesicular body", "GO:0005771", "SegmentationMask", False, True),
    ("membrane-enclosed lumen", "GO:0031974", "SegmentationMask", False, False),
    ("membrane", "GO:0016020", "SegmentationMask", False, True),
]


def _cell_scene(tree: Tree) -> dict[str, np.ndarray]:
    """Per-cell fractions [z, y, x] of every mask on the 16 x 16 x 8 grid."""

    def block(x0, x1, y0, y1, z0, z1, value=1.0):
        cells = tree.empty_cells()
        cells[z0:z1, y0:y1, x0:x1] = value
        return cells

    organelles = {
        "mitochondrion": block(9, 12, 2, 6, 2, 6),
        "vacuole": block(12, 15, 10, 14, 2, 7),
        "lipid droplet": block(8, 10, 12, 14, 3, 5),
        "multivesicular body": block(13, 15, 3, 5, 4, 6),
        "Golgi apparatus": block(10, 12, 8, 10, 1, 3, 0.5),
        "vesicle": block(8, 9, 2, 3, 1, 2, 0.3) + block(14, 15, 7, 8, 6, 7, 0.3),
    }
    masks = dict(organelles)
    masks["nucleus"] = block(0, 6, 0, 16, 0, 8)
    masks["nuclear envelope"] = block(5, 7, 0, 16, 0, 8, 0.1)
    masks["endoplasmic reticulum"] = block(7, 16, 6, 7, 0, 8, 0.08)
    masks["microtubule"] = block(7, 16, 7, 8, 4, 5, 0.02)
    lumen = np.clip(sum(organelles.values()), 0, 1) + masks["endoplasmic reticulum"] * 0.5
    masks["membrane-enclosed lumen"] = np.clip(lumen, 0, 1)
    outline = sum(np.abs(np.gradient(m, axis=a)) for m in organelles.values() for a in range(3))
    membrane = 0.1 * (outline > 0) + masks["nuclear envelope"] + masks["endoplasmic reticulum"]
    masks["membrane"] = np.clip(membrane, 0, 0.3)
    cytosol = block(6, 16, 0, 16, 0, 8) - np.clip(sum(organelles.values()), 0, 1)
    masks["cytoplasm"] = np.clip(cytosol, 0, 1)
    return masks


def _points_in(tree: Tree, cells: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` random points in voxels, in cells where ``cells`` is 1."""
    rng = np.random.default_rng(seed)
    z, y, x = np.nonzero(cells >= 1.0)
    pick = rng.integers(0, len(x), n)
    cell = tree.grid().cell_size / (tree.spacing * 1e-10)
    corner = np.stack([x[pick], y[pick], z[pick]], axis=1) * cell
    return corner + rng.uniform(0, cell, (n, 3))


def agreement(tmp_path: Path, policy: str = "auto") -> tuple[float, dict[str, tuple[bool, bool]]]:
    tree = Tree(tmp_path)
    masks = _cell_scene(tree)
    for i, (name, go, shape, _flag, curator) in enumerate(PORTAL_10000):
        if shape == "Point":
            xyz = _points_in(tree, masks["cytoplasm"], 300 if "ribosome" in name else 60, i)
            summary = tree.points(xyz)
        else:
            summary = tree.mask(masks[name])
        tree.add(
            Ann(
                str(100 + i),
                name,
                shape,
                gt=True,
                curator=curator,
                method="hybrid",
                object_id=go,
                summary=summary,
            )
        )
    built = build_state(tree.build(), "10000", "TS_026", None, tree.options(policy=policy))
    assert_roundtrip(built.state)
    decisions = built.decisions[1:]  # after the tomogram's, in the candidates' order
    chosen = {
        c.annotation.object_name: d.visible
        for c, d in zip(built.candidates, decisions, strict=True)
    }
    table = {name: (chosen[name], flag) for name, _, _, flag, _ in PORTAL_10000}
    agree = sum(auto == flag for auto, flag in table.values()) / len(table)
    return agree, table


def test_dataset_10000_agreement(tmp_path: Path) -> None:
    agree, table = agreement(tmp_path)
    disagreements = sorted(name for name, (auto, flag) in table.items() if auto != flag)
    print(f"\nagreement with the 10000 curators: {agree:.0%}; differs on {disagreements}")
    # The containers the curators hid are hidden for the stated reason, and every layer
    # they showed is shown.
    for name in ("cytoplasm", "membrane-enclosed lumen", "membrane", "nucleus"):
        assert table[name] == (False, False), name
    assert all(auto for auto, flag in table.values() if flag)
    # Measured 67%: the rest are compact organelles (vesicle, vacuole, lipid droplet,
    # multivesicular body) and FAS picks that hide nothing; the curators hid them by taste.
    assert agree >= 0.6


def test_sample_tree_states(request) -> None:
    """Every sample-tree state round-trips; agreement with its curator flags is reported."""
    import pytest

    from cryoet_ng.catalogue import Catalogue
    from cryoet_ng.config import SelectionConfig
    from ngstate import StateOptions
    from ngstate.candidates import gather
    from ngstate.selection import select

    try:
        root = Path(request.getfixturevalue("sample_root")).resolve()
    except pytest.FixtureLookupError:
        pytest.skip("no sample_root fixture (tests/conftest.py) yet")
    catalogue = Catalogue.scan(root)
    agree = total = 0
    for run in catalogue.runs():
        for tomogram in run.tomograms:
            options = StateOptions("http://127.0.0.1:8000/data", root, root)
            built = build_state(catalogue, run.dataset_id, run.name, tomogram.id, options)
            assert_roundtrip(built.state)
            cands = gather(run, tomogram, root).candidates
            for c, d in zip(cands, select(cands, SelectionConfig(policy="auto")), strict=True):
                total += 1
                agree += bool(c.author_flag) == d.visible
    print(f"\nsample tree: automatic choice agrees with the flags on {agree}/{total}")
    assert total == 0 or agree / total >= 0.6


# -- the curator corpus -----------------------------------------------------------------------
def corpus() -> list[dict]:
    import json

    return json.loads(CORPUS.read_text())["datasets"]


def corpus_candidates(dataset: dict) -> tuple[list[Candidate], list[bool]]:
    """Metadata-only candidates of one dataset (no summaries) and the curators' flags."""
    by_annotation: dict[int, list[dict]] = {}
    for row in dataset["layers"]:
        by_annotation.setdefault(row["annotation"], []).append(row)
    cands, flags = [], []
    for number, rows in by_annotation.items():
        first = rows[0]
        obj = {k: first[k] for k in ("name", "id", "description", "state") if first[k]}
        keys = ("method_type", "ground_truth_status", "is_curator_recommended", "version")
        metadata = {"annotation_object": obj, **{k: first[k] for k in keys}}
        files = tuple(
            AnnotationFile(
                r["shape"],
                "ndjson" if r["shape"] in POINT_SHAPES else "zarr",
                Path("/absent"),
                "",
                r["is_visualization_default"],
            )
            for r in rows
        )
        ann_id = str(99 + number)
        ann = Annotation(ann_id, 10.0, Path(f"/absent/{ann_id}/a-1.0.json"), metadata, files)
        for file, row in zip(files, rows, strict=True):
            kind = {"Point": "point", "InstanceSegmentation": "point"}.get(file.shape)
            kind = kind or ("orientedpoint" if file.shape == "OrientedPoint" else "segmentation")
            name = layer_name(ann)
            note = "no summary; decided from metadata only"
            cands.append(Candidate(name, ann, file, kind, Path("/absent"), None, note, frozenset()))
            flags.append(row["is_visualization_default"])
    _unique_names(cands)
    return cands, flags


def _auto(config: SelectionConfig):
    return lambda cands: [d.visible for d in select(cands, config)]


NO_CAP = SelectionConfig(policy="auto", max_visible=10_000)


def _one_per_object(cands: list[Candidate]) -> list[bool]:
    best: dict[tuple[str, str], tuple[tuple, int]] = {}
    for i, c in enumerate(cands):
        key, rank = (c.object_key, c.family), (c.tier, -c.annotation.version, -int(c.annotation.id))
        if key not in best or rank < best[key][0]:
            best[key] = (rank, i)
    keep = {i for _, i in best.values()}
    return [i in keep for i in range(len(cands))]


BASELINES = {
    "show everything": lambda cands: [True] * len(cands),
    "ground truth only": lambda cands: [c.annotation.ground_truth for c in cands],
    "curator-recommended only": lambda cands: [c.annotation.curator_recommended for c in cands],
    "one per object by rank": _one_per_object,
}


def corpus_agreement(policy, part: str = "all") -> tuple[float, dict[str, tuple[int, int]]]:
    """Share of layers where ``policy`` agrees with the curators; per-dataset counts."""
    datasets = corpus()
    if part != "all":
        held = part == "held"
        datasets = [d for i, d in enumerate(datasets) if (i % 3 == 2) == held]
    per = {}
    for dataset in datasets:
        cands, flags = corpus_candidates(dataset)
        shown = policy(cands)
        per[dataset["dataset"]] = (
            sum(a == b for a, b in zip(shown, flags, strict=True)),
            len(flags),
        )
    return sum(a for a, _ in per.values()) / sum(n for _, n in per.values()), per


def test_corpus_is_what_was_transcribed() -> None:
    datasets = corpus()
    assert len(datasets) == 32 and sum(len(d["layers"]) for d in datasets) == 182
    for d in datasets:
        assert d["repo"] == "chanzuckerberg/cryoet-data-portal-backend" and len(d["commit"]) == 40


def test_corpus_agreement_beats_baselines() -> None:
    figures = {part: corpus_agreement(_auto(NO_CAP), part)[0] for part in ("all", "design", "held")}
    _, per = corpus_agreement(_auto(NO_CAP))
    print(f"\nauto (no cap): {figures}; differs in {[k for k, (a, n) in per.items() if a < n]}")
    # Measured 171/182 = 0.9396 (design 0.920, held out 22/22), rounded down.
    assert figures["all"] >= 0.939
    assert figures["design"] >= 0.92 and figures["held"] >= 1.0
    for name, baseline in BASELINES.items():
        base = corpus_agreement(baseline)[0]
        print(f"{name}: {base:.3f}")
        assert figures["all"] > base, name


def test_corpus_agreement_with_default_cap() -> None:
    # A cap of 12 cost 22 layers the curators show (10441, 10492, 10512): 149/182 = 0.8187,
    # below "show everything" (0.824). The default cap is now 32, which never binds here:
    # measured 171/182 = 0.9396, the same as with no cap.
    agree, _ = corpus_agreement(_auto(SelectionConfig(policy="auto")))
    assert agree >= 0.939
    capped, _ = corpus_agreement(_auto(SelectionConfig(policy="auto", max_visible=12)))
    assert capped < agree


def test_corpus_explanations_name_rule_and_layers() -> None:
    by_id = {d["dataset"]: d for d in corpus()}
    cands, _ = corpus_candidates(by_id["10000"])
    decisions = {d.layer: d for d in select(cands, NO_CAP)}
    cyto = decisions["102 cytoplasm · ground truth · hybrid"]
    assert not cyto.visible and "container prior" in cyto.reason and cyto.rule == "occludes"
    assert "101 cytosolic ribosome · ground truth · hybrid" in cyto.others
    membrane = decisions["114 membrane · ground truth · hybrid"]
    assert not membrane.visible and membrane.rule == "duplicate"
    assert membrane.others == ("107 nuclear envelope · ground truth · hybrid",)
    assert "nuclear envelope" in membrane.reason
    cands, _ = corpus_candidates(by_id["10002"])
    prediction = select(cands, NO_CAP)[1]
    truth = "100 actin filament · ground truth · manual"
    assert not prediction.visible and prediction.others == (truth,)
    assert f"{truth} shown" in prediction.reason
