"""The portal's metadata documents as typed records, checked at the edge.

Every field the project reads is declared here with its type (msgspec ``Struct`` types,
converted with ``strict=True``): a boolean must be ``true``/``false`` (``"false"``, a
string, is an error, not a true value), a number a number, a path a string. Fields the
project does not read are ignored, whatever they hold. A document that does not fit gives
no record and one :class:`Problem` naming the field (``annotation_object.name``,
``size.x``) and what was wrong; the catalogue turns it into one warning naming the file
and skips that item, and nothing raises.

Annotation ``files[]`` entries are checked one by one: a bad entry, or one whose shape is
not a portal shape, is skipped with its own problem while the annotation keeps its other
files. Run and dataset metadata carry nothing the conversion needs: a bad document there
is reported, and the run or dataset is kept without it.

Cost: an annotation document is typed in 26 us, a tomogram document in 8 us (best of 5 x
20,000 on the shared 2-core machine at load average 13, so an upper bound): 10,000
documents in well under a second when a catalogue is built. pydantic v2 was not measured
against it, being the larger dependency for the same guarantees.

Documents are parsed by :func:`loads`, which also refuses what ``json`` lets through but
no other JSON reader accepts: ``NaN``, ``Infinity`` and overflowing numbers (``1e999``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec

# Shapes the portal publishes (portal-data-format.md, section 2); the precompute reads some
# of them, the others (meshes, captions) are known and passed over in silence.
KNOWN_SHAPES = frozenset(
    {
        "Point",
        "OrientedPoint",
        "InstanceSegmentation",
        "SegmentationMask",
        "InstanceSegmentationMask",
        "TriangularMesh",
        "TriangularMeshGroup",
        "Mesh",
        "GlobalCaption",
        "AnnotationCaption",
    }
)

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Voxels = Annotated[int, msgspec.Meta(ge=1)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    """Why (part of) a document was not taken: the field (dotted, ``files[2].shape``; empty
    for the document itself) and the reason."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class AnnotationObject(msgspec.Struct, frozen=True):
    name: NonEmpty
    id: str | None = None
    description: str | None = None
    state: str | None = None
    diameter: Positive | None = None  # Å


class FileEntry(msgspec.Struct, frozen=True):
    shape: NonEmpty
    format: NonEmpty
    path: NonEmpty
    is_visualization_default: bool | None = None


class AnnotationMetadata(msgspec.Struct, frozen=True):
    annotation_object: AnnotationObject
    files: list[Any]  # checked entry by entry: see parse_annotation
    method_type: str = ""
    ground_truth_status: bool = False
    is_curator_recommended: bool = False
    version: str | float = "1.0"
    object_count: Count | None = None
    alignment_metadata_path: str | None = None


class Size(msgspec.Struct, frozen=True):
    x: Voxels
    y: Voxels
    z: Voxels


class TomogramMetadata(msgspec.Struct, frozen=True):
    # UNSET (missing or, with a problem, unusable): the spacing of the folder name
    voxel_spacing: Positive | msgspec.UnsetType = msgspec.UNSET
    size: Size | None = None
    omezarr_dir: str | None = None
    mrc_file: str | None = None
    is_visualization_default: bool = True
    alignment_metadata_path: str | None = None


class RunMetadata(msgspec.Struct, frozen=True):
    run_name: str | None = None


class DatasetMetadata(msgspec.Struct, frozen=True):
    dataset_title: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class Annotation:
    """An annotation document: its record and the ``files[]`` entries that passed."""

    record: AnnotationMetadata
    files: tuple[FileEntry, ...]


def loads(data: bytes | str) -> tuple[dict[str, Any] | None, Problem | None]:
    """A metadata document: a JSON object, strictly parsed; else None and the problem."""
    try:
        # Decoded here: json.loads would guess UTF-16 or UTF-32 from the first bytes.
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        doc = strict_json(text)
    except UnicodeDecodeError as exc:
        return None, Problem("", f"not UTF-8 (byte {exc.start})")
    except json.JSONDecodeError as exc:
        return None, Problem(
            "", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        )
    except (ValueError, RecursionError) as exc:
        return None, Problem("", f"not valid JSON: {exc}")
    if not isinstance(doc, dict):
        return None, Problem("", f"not a JSON object but {_json_type(doc)}")
    return doc, None


def parse_annotation(doc: dict[str, Any]) -> tuple[Annotation | None, list[Problem]]:
    """The annotation record with its valid file entries, and every problem found. No
    record when the document itself does not fit (or has no usable ``files``)."""
    record, problem = convert(doc, AnnotationMetadata)
    if record is None:
        return None, [problem] if problem else []
    problems: list[Problem] = []
    files: list[FileEntry] = []
    for i, raw in enumerate(record.files):
        entry, problem = convert(raw, FileEntry)
        if entry is None:
            assert problem is not None
            field = f"files[{i}]" + (f".{problem.field}" if problem.field else "")
            problems.append(Problem(field, f"{problem.message}; entry skipped"))
        elif entry.shape not in KNOWN_SHAPES:
            known = ", ".join(sorted(KNOWN_SHAPES))
            message = f"unknown shape {entry.shape!r} (known: {known}); entry skipped"
            problems.append(Problem(f"files[{i}].shape", message))
        else:
            files.append(entry)
    if not record.files:
        problems.append(Problem("files", "no files listed"))
        return None, problems
    return Annotation(record, tuple(files)), problems


def parse_tomogram(doc: dict[str, Any]) -> tuple[TomogramMetadata | None, Problem | None]:
    """The tomogram record, or None and the problem. A bad ``voxel_spacing`` alone keeps
    the record (the folder name ``VoxelSpacing<vs>`` carries the spacing too) and comes
    back as the problem beside it."""
    record, problem = convert(doc, TomogramMetadata)
    if record is None and problem is not None and problem.field == "voxel_spacing":
        rest = {k: v for k, v in doc.items() if k != "voxel_spacing"}
        record, other = convert(rest, TomogramMetadata)
        if record is None:
            return None, other
        return record, Problem("voxel_spacing", f"{problem.message}; the folder's spacing is used")
    return record, problem


def parse_run(doc: dict[str, Any]) -> tuple[RunMetadata | None, Problem | None]:
    return convert(doc, RunMetadata)


def parse_dataset(doc: dict[str, Any]) -> tuple[DatasetMetadata | None, Problem | None]:
    return convert(doc, DatasetMetadata)


def convert(doc: Any, kind: type[T]) -> tuple[T | None, Problem | None]:
    """``doc`` as ``kind`` (strictly), or None and the problem naming the field."""
    try:
        return msgspec.convert(doc, type=kind, strict=True), None
    except msgspec.ValidationError as exc:
        return None, _problem(str(exc))
    except (TypeError, ValueError, RecursionError) as exc:  # e.g. a pathologically deep value
        return None, Problem("", f"cannot be read: {exc}")


_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(.*)`$")


def _problem(text: str) -> Problem:
    """msgspec's ``Expected `bool`, got `str` - at `$.files[0].shape``` -> field + message;
    ``Object missing required field `name` - at `$.annotation_object``` -> the field
    ``annotation_object.name``, "missing"."""
    match = _AT.match(text)
    message, path = (match.group(1), match.group(2) or "") if match else (text, "")
    path = path.lstrip(".")
    missing = _MISSING.match(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
        message = "missing (required)"
    return Problem(path, message.replace("`", ""))


def strict_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN, Infinity and numbers beyond float range (1e999):
    ValueError, as for any other invalid JSON. Metadata and saved states both parse this way."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
