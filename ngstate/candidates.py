"""Catalogue + precompute summaries -> candidate layers of one tomogram, and their names.

A candidate is one (annotation, shape) whose precomputed output exists. It carries what
the selection needs (object identity, shape family, rank, author flag, summary) and what
the layer builder needs (URL, spacing, labels, annotation properties). A file whose output
is missing is listed as :class:`LeftOut`, with the reason.

Layer names are for people, and keep the portal's leading annotation id (other tools match
layers on it)::

    <id> <object> · <ground truth | prediction> · <method or software>
    100 cytosolic ribosome · ground truth · manual
    105 membrane · prediction · MemBrain-seg

(words: :mod:`cryoet_ng.about`). Names are unique within a state: where two would be
equal, the shape word (picks, oriented picks, instance picks, mask, instances) is added
after the object when the shapes differ (one annotation, two shapes), the voxel spacing at
the end when the spacings differ (ids repeat per spacing folder), and a number last.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

from cryoet_ng.about import SEPARATOR, About, name_words, shape_word
from cryoet_ng.catalogue import (
    POINT_SHAPES,
    VOLUME_SHAPES,
    Annotation,
    AnnotationFile,
    Run,
    Tomogram,
)
from cryoet_ng.failures import FailureRecord
from cryoet_ng.layout import Layout
from cryoet_ng.store import TreePath
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


# Shapes that are drawn (captions are not); their files' flags say whether a run is curated.
VISUAL_SHAPES = (*POINT_SHAPES, *VOLUME_SHAPES, "TriangularMesh")


def layer_name(annotation: Annotation, shape: str | None = None, spacing: bool = False) -> str:
    """``<id> <object>[ <shape word>] · <status> · <method>[ (<spacing> Å)]``."""
    status, method = name_words(annotation.metadata)
    head = f"{annotation.id} {annotation.object_name}".strip()
    if shape is not None:
        head += f" {shape}"
    name = SEPARATOR.join(part for part in (head, status, method) if part)
    return name + (f" ({annotation.voxel_spacing:g} Å)" if spacing else "")


@dataclass
class Candidate:
    name: str
    annotation: Annotation
    file: AnnotationFile
    layer_type: str  # point, orientedpoint, segmentation, instancesegmentation
    output: Path
    summary: Summary | None
    summary_note: str | None  # why there is no usable summary
    properties: frozenset[str]  # annotation property ids in the output's info
    # The last precompute of this file failed; the output is an earlier run's (stale).
    failure: FailureRecord | None = None

    @property
    def shape(self) -> str:
        return self.file.shape

    @cached_property
    def about(self) -> About:
        return About.from_metadata(self.annotation.metadata)

    @property
    def shape_word(self) -> str:
        return shape_word(self.shape, self.layer_type == "instancesegmentation")

    @property
    def stale(self) -> str | None:
        """Why the layer is stale, or None."""
        if self.failure is None:
            return None
        return (
            f"stale: the last precompute of its input failed ({self.failure.describe()}); "
            "the layer shows an earlier run's output"
        )

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
        """The layer name, with its tier when the name's status does not say it, for reasons:
        ``101 cytosolic ribosome · prediction · hybrid (curator-recommended)``."""
        return self.name if self.tier == 0 else f"{self.name} ({self.tier_label})"


@dataclass
class LeftOut:
    """A file with a precomputed form whose output is missing: no layer, and why."""

    name: str
    annotation: Annotation
    file: AnnotationFile
    reason: str
    failure: FailureRecord | None = None  # the precompute of it failed

    @property
    def shape(self) -> str:
        return self.file.shape

    @property
    def shape_word(self) -> str:
        count = self.annotation.metadata.get("object_count")
        return shape_word(self.shape, not isinstance(count, int) or count > 1)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "annotation": self.annotation.id,
            "object": self.annotation.object_name,
            "shape": self.shape,
            "reason": self.reason,
            "failed": self.failure is not None,
        }


@dataclass
class Gathered:
    candidates: list[Candidate]
    messages: list[str]
    left_out: list[LeftOut] = field(default_factory=list)
    # is_visualization_default of every drawn (annotation, shape) of the tomogram, whether
    # or not its output exists: whether the run was curated (ngstate.selection).
    flags: tuple[bool | None, ...] = ()


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


def _merge_flags(a: bool | None, b: bool | None) -> bool | None:
    """The flag of a shape listed twice (zarr and mrc): true wins, then false."""
    if a is True or b is True:
        return True
    return False if a is False or b is False else None


def _failure(reader: SummaryReader, record: Path) -> FailureRecord | None:
    try:
        return reader.failure(record)
    except (ValueError, OSError):
        return None  # a damaged record says less than none: the summary decides


def gather(
    run: Run, tomogram: Tomogram, out_root: Path, reader: SummaryReader | None = None
) -> Gathered:
    """Candidates of the tomogram's annotations, and what was left out and why.

    The files are those of :func:`ngstate.inputs.state_inputs`; summaries, ``info`` files and
    failure records are read through ``reader`` (default: a fresh, unshared one).
    """
    reader = reader if reader is not None else SummaryReader()
    inputs = state_inputs(run, tomogram, Layout(out_root))
    candidates: list[Candidate] = []
    left_out: list[LeftOut] = []
    messages: list[str] = []
    flags: dict[tuple[TreePath, str], bool | None] = {}
    for entry in inputs.files:
        annotation, file, output = entry.annotation, entry.file, entry.output
        if file.shape in VISUAL_SHAPES:
            key = (annotation.metadata_path, file.shape)
            flags[key] = _merge_flags(flags.get(key), file.is_visualization_default)
        if output is None:
            if file.shape == "TriangularMesh":
                messages.append(
                    f"annotation {annotation.id} ({annotation.object_name}): mesh files are "
                    "not converted; left out"
                )
            continue
        _, summary_file, _, record = entry.paths()  # the inputs' own paths: one place decides
        failure = _failure(reader, record)
        if not output.is_dir():
            reason = f"precompute output {output.name} missing" + (
                f": its precompute failed ({failure.describe()})"
                if failure is not None
                else " (precompute not run?)"
            )
            messages.append(
                f"annotation {annotation.id} ({annotation.object_name}) {file.shape}: "
                f"{reason}; layer left out"
            )
            left_out.append(LeftOut(layer_name(annotation), annotation, file, reason, failure))
            continue
        is_point = file.shape in POINT_SHAPES
        expected = ("annotation",) if is_point else ("segmentation",)
        summary, note = _read_summary(reader, summary_file, expected)
        props = reader.info_properties(output) if is_point else frozenset()
        layer_type = _layer_type(annotation, file, summary)
        candidates.append(
            Candidate(
                layer_name(annotation),
                annotation,
                file,
                layer_type,
                output,
                summary,
                note,
                props,
                failure,
            )
        )
        if failure is not None:
            messages.append(f"{candidates[-1].name}: {candidates[-1].stale}")
    _unique_names([*candidates, *left_out])
    return Gathered(candidates, messages, left_out, tuple(flags.values()))


class _Named(Protocol):
    name: str
    annotation: Annotation

    @property
    def shape_word(self) -> str: ...


def _clashes(items: Sequence[_Named]) -> list[list[_Named]]:
    groups: dict[str, list[_Named]] = {}
    for item in items:
        groups.setdefault(item.name, []).append(item)
    return [group for group in groups.values() if len(group) > 1]


def _unique_names(items: Sequence[_Named]) -> None:
    """Neuroglancer layer names must be unique: qualify equal names (module docstring)."""
    for group in _clashes(items):
        words = {item.shape_word for item in group}
        spacings = {item.annotation.voxel_spacing for item in group}
        for item in group:
            word = item.shape_word if len(words) > 1 else None
            item.name = layer_name(item.annotation, word, spacing=len(spacings) > 1)
    for group in _clashes(items):  # still equal (same id, shape and spacing): number them
        for k, item in enumerate(group[1:], start=2):
            item.name = f"{item.name} #{k}"
