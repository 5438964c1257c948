"""Layer names and descriptions for people (issue 15): ``<id> <object> · <ground truth |
prediction> · <method or software>``, unique within a state, no shape jargon; the same
description in the precomputed outputs (segment properties, annotation properties)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from test_ngstate_tree import Ann, Tree, assert_roundtrip

from cryoet_ng.about import SHAPE_WORDS, TAG_DESCRIPTIONS, About
from cryoet_ng.catalogue import Annotation, Catalogue
from ngstate import StateOptions, build_state
from ngstate.candidates import _unique_names, layer_name
from precompute.segmentation.properties import write_segment_properties

# The portal's shape enum and the old generator's type words: never in a name.
JARGON = re.compile(
    r"\b(point|orientedpoint|instancesegmentation|segmentation|segmentationmask|"
    r"instancesegmentationmask|triangularmesh)\b",
    re.IGNORECASE,
)


def names(tree: Tree) -> list[str]:
    built = build_state(tree.build(), "10000", "TS_026", None, tree.options())
    assert_roundtrip(built.state)
    return [layer["name"] for layer in built.state["layers"][1:]]


def test_sample_run_names(server_tree: Path) -> None:
    """Run 10000/TS_026 of the sample: every shape, a prediction beside ground truth, one
    annotation with two shapes, ids repeated across voxel spacings."""
    options = StateOptions("http://127.0.0.1:8000/data", server_tree, server_tree)
    built = build_state(Catalogue.scan(server_tree), "10000", "TS_026", None, options)
    assert [c.name for c in built.candidates] == [
        "100 cytosolic ribosome · ground truth · manual",
        "101 cytosolic ribosome · prediction · pyTOM + DeePiCt",
        "102 proton-transporting ATP synthase complex · prediction · hybrid",
        "103 membrane · ground truth · manual",
        "104 cytoplasm · ground truth · manual",
        "105 membrane · prediction · MemBrain-seg",
        "106 vesicle instances · ground truth · manual",  # one annotation, two shapes
        "106 vesicle picks · ground truth · manual",
        "100 microtubule · ground truth · manual",  # id 100 again, at 26.96 Å: no clash
    ]
    assert not any(JARGON.search(c.name) for c in built.candidates)


def test_same_id_and_object_at_two_spacings_get_the_spacing(tmp_path: Path) -> None:
    tree = Tree(tmp_path).add(
        Ann("100", "microtubule", "SegmentationMask", gt=True),
        Ann("100", "microtubule", "SegmentationMask", gt=True, spacing=26.96),
    )
    assert names(tree) == [
        "100 microtubule · ground truth · manual (13.48 Å)",
        "100 microtubule · ground truth · manual (26.96 Å)",
    ]


@dataclass
class Item:
    """What naming needs of a layer: its name, annotation and shape word."""

    annotation: Annotation
    shape_word: str
    name: str = ""


def annotation(ann_id: str, spacing: float, name: str = "vesicle") -> Annotation:
    meta = {"annotation_object": {"name": name}, "method_type": "manual"}
    return Annotation(ann_id, spacing, Path(f"/absent/{ann_id}/v-1.0.json"), meta)


def test_clashes_get_shape_word_spacing_or_a_number() -> None:
    at_13, at_27 = annotation("100", 13.48), annotation("100", 26.96)
    items = [
        Item(at_13, "mask"),
        Item(at_27, "picks"),
        Item(at_27, "mask"),
        Item(annotation("101", 13.48, "ER"), "mask"),
        Item(annotation("101", 13.48, "ER"), "mask"),  # nothing tells them apart
    ]
    for item in items:
        item.name = layer_name(item.annotation)
    _unique_names(items)
    assert [item.name for item in items] == [
        "100 vesicle mask · prediction · manual (13.48 Å)",
        "100 vesicle picks · prediction · manual (26.96 Å)",
        "100 vesicle mask · prediction · manual (26.96 Å)",
        "101 ER · prediction · manual",
        "101 ER · prediction · manual #2",
    ]


@given(
    gt=st.booleans(),
    method=st.sampled_from(["manual", "hybrid", "automated", "simulated", "", "Manual"]),
    software=st.text(min_size=0, max_size=60).map(str.strip),
)
def test_status_and_method_words(gt: bool, method: str, software: str) -> None:
    about = About.from_metadata(
        {"ground_truth_status": gt, "method_type": method, "annotation_software": software}
    )
    assert about.status == ("ground truth" if gt else "prediction")
    word = about.method_word
    assert len(word) <= 32
    clean = " ".join(software.split())
    if method.lower() == "automated" and clean:
        assert word[:-1] in clean or word == clean  # the software, cut with an ellipsis
    elif method:
        assert word == method.lower()
    for tag in about.tags():
        assert " " not in tag and tag in TAG_DESCRIPTIONS


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = (
    "annotation_object",
    "authors",
    "ground_truth_status",
    "method_type",
    "annotation_software",
    "annotation_method",
    "object_count",
    "deposition_id",
    "version",
)


@given(metadata=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=len(FIELDS)))
def test_damaged_metadata_still_describes(metadata: dict) -> None:
    """Any JSON where the portal puts a field (a hand-edited or damaged file): a description,
    never an exception; authors are only the names the record really gives."""
    about = About.from_metadata(metadata)
    assert isinstance(about.describe(), str) and about.authors_text
    assert all(isinstance(a, str) and a and a == " ".join(a.split()) for a in about.authors)
    assert about.object_count is None or isinstance(about.object_count, int)
    assert all(" " not in tag for tag in about.tags())


def test_author_records_and_plain_names() -> None:
    about = About.from_metadata(
        {"authors": [{"name": " Ada  Lamella "}, "Ben Tiltseries", {"orcid": "0000"}, 3, None]}
    )
    assert about.authors == ("Ada Lamella", "Ben Tiltseries")
    assert About.from_metadata({"authors": 5}).authors_text == "authors not given"


def test_shape_words_are_plain() -> None:
    assert set(SHAPE_WORDS.values()) == {
        "picks",
        "oriented picks",
        "instance picks",
        "mask",
        "instances",
        "mesh",
    }


def test_segment_properties_carry_the_description(tmp_path: Path) -> None:
    about = About.from_metadata(
        {
            "annotation_object": {"name": "vesicle"},
            "ground_truth_status": True,
            "is_curator_recommended": True,
            "method_type": "manual",
            "annotation_method": "traced in Amira",
            "annotation_software": "Amira",
            "authors": [{"name": "Ada Lamella"}, {"name": "Ben Tiltseries"}],
            "deposition_id": 10300,
        }
    )
    write_segment_properties(tmp_path, "vesicle", [1, 2, 5], True, about)
    info = json.loads((tmp_path / "segment_properties" / "info").read_text())
    inline = info["inline"]
    assert inline["ids"] == ["1", "2", "5"]
    props = {p["id"]: p for p in inline["properties"]}
    # Neuroglancer's rules (segment_properties.md): one label, one description, one tags;
    # every values list as long as ids; tags without spaces, indices ascending.
    assert [p["type"] for p in inline["properties"]].count("description") == 1
    assert all(len(p["values"]) == 3 for p in inline["properties"])
    assert props["label"]["values"] == ["vesicle 1", "vesicle 2", "vesicle 5"]
    assert "authors: Ada Lamella, Ben Tiltseries" in props["description"]["values"][0]
    assert "deposition 10300" in props["description"]["values"][0]
    assert props["tags"]["tags"] == ["ground-truth", "manual", "curator-recommended"]
    assert props["tags"]["values"][0] == [0, 1, 2]
    assert len(props["tags"]["tag_descriptions"]) == 3
    assert props["authors"] == {
        "id": "authors",
        "type": "string",
        "values": ["Ada Lamella, Ben Tiltseries"] * 3,
    }
