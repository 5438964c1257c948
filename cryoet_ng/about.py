"""What an annotation is, in words for people: one reading of the metadata, used everywhere.

Layer names (ngstate), segment properties and annotation property descriptions
(precompute) and the index page (server) all describe an annotation the same way:

* **status**: ``ground truth`` when the annotator set ``ground_truth_status``, else
  ``prediction``. The portal has no other single flag (portal-data-format.md, section 2),
  and its own site badges ground truth by that field alone.
* **method**: how it was made, in one or two words. ``manual``, ``hybrid`` and
  ``simulated`` say the most as the method type; for an ``automated`` annotation the
  software says more ("MemBrain-seg", "pyTOM + DeePiCt": it tells two predictions of one
  object apart), so it is used when the metadata names one.
* **shape**: a plain word, no portal enum: picks, oriented picks, instance picks, mask,
  instances (a multi-label mask), mesh.

The portal's metadata JSON is the input (``annotation_object``, ``method_type``,
``annotation_software``, ``authors[]``, ``deposition_id``, ``object_count``...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GROUND_TRUTH = "ground truth"
PREDICTION = "prediction"
SEPARATOR = " · "
# Portal shape -> the word people read. InstanceSegmentationMask is "instances" when it
# holds several labels; a single-label one is drawn (and named) as a mask.
SHAPE_WORDS = {
    "Point": "picks",
    "OrientedPoint": "oriented picks",
    "InstanceSegmentation": "instance picks",
    "SegmentationMask": "mask",
    "InstanceSegmentationMask": "instances",
    "TriangularMesh": "mesh",
}
METHOD_TYPES = ("manual", "hybrid", "automated", "simulated")
# Software names longer than this are cut (layer names stay readable in the layer list).
SOFTWARE_CHARS = 32


def shape_word(shape: str, multi_label: bool = True) -> str:
    """The plain word for a portal shape (an unknown one is lower-cased as it is)."""
    if shape == "InstanceSegmentationMask" and not multi_label:
        return SHAPE_WORDS["SegmentationMask"]
    return SHAPE_WORDS.get(shape, shape.lower())


def join_names(names: Sequence[str], limit: int = 3) -> str:
    """``A, B, C and 2 more``."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _author_names(authors: Any) -> tuple[str, ...]:
    """Names of the portal's author records (``{"name": ...}``) or of plain strings; a
    damaged list (not a list, entries without a name) gives the names it has."""
    if not isinstance(authors, list):
        return ()
    names = (a.get("name") if isinstance(a, dict) else a for a in authors)
    return tuple(_text(n) for n in names if isinstance(n, str) and _text(n))


def method_word(method_type: str, software: str) -> str:
    """``manual``, ``hybrid``, ``simulated``; the software (cut) for automated ones."""
    if len(software) > SOFTWARE_CHARS:
        software = software[: SOFTWARE_CHARS - 1].rstrip() + "…"
    if method_type == "automated" and software:
        return software
    return method_type or software


def name_words(metadata: Mapping[str, Any]) -> tuple[str, str]:
    """(status, method word) of a layer name, read without the rest of :class:`About`
    (names are made for every layer of every state)."""
    status = GROUND_TRUTH if metadata.get("ground_truth_status") else PREDICTION
    method = _text(metadata.get("method_type")).lower()
    return status, method_word(method, _text(metadata.get("annotation_software")))


@dataclass(frozen=True)
class About:
    """The facts people want about one annotation, read once from its metadata."""

    object_name: str
    ground_truth: bool
    curator_recommended: bool
    method_type: str  # manual, hybrid, automated, simulated, or "" when not given
    method: str  # free text (annotation_method)
    software: str
    authors: tuple[str, ...]
    deposition_id: str | None
    object_count: int | None
    version: str

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> About:
        obj = metadata.get("annotation_object") or {}
        names = _author_names(metadata.get("authors"))
        count = metadata.get("object_count")
        deposition = metadata.get("deposition_id")
        return cls(
            object_name=_text(obj.get("name") if isinstance(obj, dict) else ""),
            ground_truth=bool(metadata.get("ground_truth_status", False)),
            curator_recommended=bool(metadata.get("is_curator_recommended", False)),
            method_type=_text(metadata.get("method_type")).lower(),
            method=_text(metadata.get("annotation_method")),
            software=_text(metadata.get("annotation_software")),
            authors=names,
            deposition_id=None if deposition in (None, "") else _text(deposition),
            object_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
            version=_text(metadata.get("version", "")),
        )

    @property
    def status(self) -> str:
        """``ground truth`` or ``prediction`` (see the module docstring)."""
        return GROUND_TRUTH if self.ground_truth else PREDICTION

    @property
    def method_word(self) -> str:
        """``manual``, ``hybrid``, ``simulated``; the software for automated ones."""
        return method_word(self.method_type, self.software)

    @property
    def authors_text(self) -> str:
        return join_names(self.authors) if self.authors else "authors not given"

    @property
    def method_text(self) -> str:
        """``automated (template matching) with pytom-match-pick``: type, method, software."""
        text = self.method_type or "method type not given"
        if self.method:
            text += f" ({self.method})"
        if self.software:
            text += f" with {self.software}"
        return text

    def tags(self) -> tuple[str, ...]:
        """Neuroglancer segment-property tags (no spaces): status, method type, curation."""
        tags = ["ground-truth" if self.ground_truth else "prediction"]
        if self.method_type in METHOD_TYPES:
            tags.append(self.method_type)
        if self.curator_recommended:
            tags.append("curator-recommended")
        return tuple(tags)

    def describe(self) -> str:
        """One paragraph: what it is, how it was made, by whom, from which deposition."""
        parts = [f"{self.object_name}: {self.status}", f"method: {self.method_text}"]
        if self.curator_recommended:
            parts.append("curator-recommended")
        parts.append(f"authors: {self.authors_text}")
        if self.deposition_id is not None:
            parts.append(f"deposition {self.deposition_id}")
        return "; ".join(parts)


TAG_DESCRIPTIONS = {
    "ground-truth": "the annotators consider it ground truth (ground_truth_status)",
    "prediction": "not marked as ground truth: a prediction or a draft",
    "manual": "made by hand",
    "hybrid": "automated, then checked or corrected by hand",
    "automated": "made by a program (a model prediction)",
    "simulated": "synthetic",
    "curator-recommended": "the portal curators' preferred annotation of this object",
}
