"""Catalogue + precompute summaries -> candidate layers of one tomogram.

A candidate is one (annotation, shape) whose precomputed output exists. It carries what
the selection needs (object identity, shape family, rank, author flag, summary) and what
the layer builder needs (URL, spacing, labels, annotation properties).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cryoet_ng.catalogue import (
    POINT_SHAPES,
    Annotation,
    AnnotationFile,
    Run,
    Tomogram,
)
from cryoet_ng.layout import Layout, summary_path
from cryoet_ng.summaries import Summary
from ngstate.inputs import state_inputs
from ngstate.summary_reader import SummaryReader

# Tiers, best first: (label, weight). Weights double per tier, so hiding two layers of
# one tier costs as much as hiding one of the tier above; a container mask must beat the
# sum of what it would hide.
TIERS = (
    ("ground truth", 16.0),
    ("curator-recommended", 8.0),
    ("manual or hybrid", 4.0),
    ("automated prediction", 2.0),
    ("simulated", 1.0),
)
_METHOD_ORDER = {"manual": 0, "hybrid": 1, "automated": 2, "simulated": 3}
# Richer shapes first within a family (oriented points say more than plain points).
_SHAPE_RICHNESS = {
    "OrientedPoint": 0,
    "InstanceSegmentation": 1,
    "Point": 2,
    "InstanceSegmentationMask": 0,
    "SegmentationMask": 1,
}


def tier_of(annotation: Annotation) -> int:
    if annotation.ground_truth:
        return 0
    if annotation.curator_recommended:
        return 1
    method = annotation.method_type
    if method in ("manual", "hybrid"):
        return 2
    if method == "simulated":
        return 4
    return 3  # automated, or unspecified: treated as a prediction


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^0-9a-z]+", " ", text.lower())).strip()


def ontology_id(annotation: Annotation) -> str:
    return str(annotation.object_id or "").strip().upper()


def object_key(annotation: Annotation) -> str:
    """Same object = same ontology id, name, description and state.

    The name is part of the key because authors reuse one ontology term for different
    things (dataset 10009: "stellate" and "MTD sleeve" are both GO:0035869; 10492: five
    FabF chains share PDB-5SOA), and the curators show each of them.
    """
    obj = annotation.metadata.get("annotation_object") or {}
    parts = [ontology_id(annotation), normalise(annotation.object_name)]
    for extra in ("description", "state"):
        if obj.get(extra):
            parts.append(normalise(str(obj[extra])))
    return "|".join(parts)


# Metadata-only priors (used only for layers without an occupancy summary), keyed on GO
# cellular-component ids, never on free-text names.
# Compartments whose mask is a filled volume around everything else in the cell: such a
# mask would cover the picks and organelles inside it.
CONTAINER_TERMS = frozenset(
    {
        "GO:0005575",  # cellular_component (root)
        "GO:0110165",  # cellular anatomical structure
        "GO:0005622",  # intracellular anatomical structure
        "GO:0005737",  # cytoplasm
        "GO:0005829",  # cytosol
        "GO:0005634",  # nucleus
        "GO:0005654",  # nucleoplasm
        "GO:0031974",  # membrane-enclosed lumen
        "GO:0043233",  # organelle lumen
        "GO:0070013",  # intracellular organelle lumen
        "GO:0005759",  # mitochondrial matrix
        "GO:0005788",  # endoplasmic reticulum lumen
        "GO:0005775",  # vacuolar lumen
        "GO:0043202",  # lysosomal lumen
    }
)
# "membrane" (all membranes): the union of the specific membranes below.
GENERIC_MEMBRANE = "GO:0016020"
SPECIFIC_MEMBRANES = frozenset(
    {
        "GO:0005635",  # nuclear envelope
        "GO:0031965",  # nuclear membrane
        "GO:0005789",  # endoplasmic reticulum membrane
        "GO:0005741",  # mitochondrial outer membrane
        "GO:0005743",  # mitochondrial inner membrane
        "GO:0031966",  # mitochondrial membrane
        "GO:0005886",  # plasma membrane
        "GO:0000139",  # Golgi membrane
        "GO:0005765",  # lysosomal membrane
        "GO:0031090",  # organelle membrane
        "GO:0019866",  # organelle inner membrane
        "GO:0031968",  # organelle outer membrane
    }
)


def is_container(annotation: Annotation) -> bool:
    return ontology_id(annotation) in CONTAINER_TERMS


def is_specific_membrane(annotation: Annotation) -> bool:
    return ontology_id(annotation) in SPECIFIC_MEMBRANES


def numeric_id(text: str) -> int:
    return int(text) if text.isdigit() else 1 << 62


@dataclass
class Candidate:
    name: str
    annotation: Annotation
    file: AnnotationFile
    layer_type: str  # the type word of the layer's name: point, orientedpoint, segmentation...
    output: Path
    summary: Summary | None
    summary_note: str | None  # why there is no usable summary
    properties: frozenset[str]  # annotation property ids in the output's info

    @property
    def shape(self) -> str:
        return self.file.shape

    @property
    def family(self) -> str:
        return "point" if self.shape in POINT_SHAPES else "volume"

    @property
    def object_key(self) -> str:
        return object_key(self.annotation)

    @property
    def tier(self) -> int:
        return tier_of(self.annotation)

    @property
    def vetted_oriented(self) -> bool:
        """Oriented picks a person checked (ground truth, manual or hybrid).

        They are the refined product of sub-tomogram averaging; plain picks of the same
        object are its input, so within one object they come first (datasets 10455, 10468,
        10469: the curators show the refined oriented set, not the manual or 2D picks).
        """
        a = self.annotation
        return self.shape == "OrientedPoint" and (
            a.ground_truth or a.method_type in ("manual", "hybrid")
        )

    @property
    def tier_label(self) -> str:
        return TIERS[self.tier][0]

    @property
    def weight(self) -> float:
        return TIERS[self.tier][1]

    @property
    def author_flag(self) -> bool | None:
        return self.file.is_visualization_default

    @property
    def rank_key(self) -> tuple[object, ...]:
        """Lower is better within one object and shape family."""
        a = self.annotation
        return (
            not self.vetted_oriented,
            self.tier,
            not a.curator_recommended,
            _METHOD_ORDER.get(a.method_type, 2),
            _SHAPE_RICHNESS.get(self.shape, 9),
            -a.version,
            -numeric_id(a.id),
            self.name,
        )

    @property
    def labels(self) -> tuple[int, ...]:
        """Labels to show: from the summary, else 1..object_count for instance masks."""
        if self.summary is not None and self.summary.labels:
            return tuple(sorted(k for k in self.summary.labels if k != 0))
        count = int(self.annotation.metadata.get("object_count") or 0)
        if self.shape == "InstanceSegmentationMask" and count > 1:
            return tuple(range(1, count + 1))
        return (1,)

    def describe(self) -> str:
        """``ground truth 101 cytosolic ribosome point``: tier + layer name, for reasons."""
        return f"{self.tier_label} {self.name}"


@dataclass
class Gathered:
    candidates: list[Candidate]
    messages: list[str]


def _layer_type(annotation: Annotation, file: AnnotationFile, summary: Summary | None) -> str:
    if file.shape in ("Point", "InstanceSegmentation"):
        return "point"
    if file.shape == "OrientedPoint":
        return "orientedpoint"
    if summary is not None and summary.labels is not None:
        multi = len([k for k in summary.labels if k != 0]) > 1
    else:
        multi = file.shape == "InstanceSegmentationMask" and (
            int(annotation.metadata.get("object_count") or 0) > 1
        )
    return "instancesegmentation" if multi else "segmentation"


def _read_summary(
    reader: SummaryReader, path: Path, expected: tuple[str, ...]
) -> tuple[Summary | None, str | None]:
    try:
        summary = reader.summary(path)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc  # no server paths in notes
        return None, f"summary {path.name} unreadable ({reason}); decided from metadata only"
    if summary is None:
        return None, "no summary (precompute not run?); decided from metadata only"
    if summary.kind not in expected:
        return None, f"summary {path.name} has kind {summary.kind!r}; decided from metadata only"
    return summary, None


def gather(
    run: Run, tomogram: Tomogram, out_root: Path, reader: SummaryReader | None = None
) -> Gathered:
    """Candidates of the tomogram's annotations, and what was left out and why.

    The files are those of :func:`ngstate.inputs.state_inputs`; summaries and ``info``
    files are read through ``reader`` (default: a fresh, unshared one).
    """
    reader = reader if reader is not None else SummaryReader()
    inputs = state_inputs(run, tomogram, Layout(out_root))
    candidates: list[Candidate] = []
    messages: list[str] = []
    for entry in inputs.files:
        annotation, file, output = entry.annotation, entry.file, entry.output
        if output is None:
            if file.shape == "TriangularMesh":
                messages.append(
                    f"annotation {annotation.id} ({annotation.object_name}): mesh files are "
                    "not converted; left out"
                )
            continue
        if not output.is_dir():
            messages.append(
                f"annotation {annotation.id} ({annotation.object_name}) {file.shape}: "
                f"precompute output {output.name} missing; layer left out"
            )
            continue
        is_point = file.shape in POINT_SHAPES
        expected = ("annotation",) if is_point else ("segmentation",)
        summary, note = _read_summary(reader, summary_path(output), expected)
        props = reader.info_properties(output) if is_point else frozenset()
        layer_type = _layer_type(annotation, file, summary)
        name = f"{annotation.id} {annotation.object_name} {layer_type}"
        candidates.append(
            Candidate(name, annotation, file, layer_type, output, summary, note, props)
        )
    _unique_names(candidates)
    return Gathered(candidates, messages)


def _unique_names(candidates: list[Candidate]) -> None:
    """Neuroglancer layer names must be unique: qualify clashes with spacing and/or shape."""
    groups: dict[str, list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(c.name, []).append(c)
    for group in groups.values():
        if len(group) < 2:
            continue
        spacings = {c.annotation.voxel_spacing for c in group}
        for c in group:
            if len(spacings) == len(group):
                c.name = f"{c.name} ({c.annotation.voxel_spacing:g} Å)"
            else:
                c.name = f"{c.name} ({c.shape}, {c.annotation.voxel_spacing:g} Å)"
