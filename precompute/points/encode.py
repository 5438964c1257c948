"""Binary encoding of precomputed annotations with numpy structured dtypes (no per-item loops).

Single annotation encoding (Neuroglancer's ``src/datasource/precomputed/annotations.md``):
float32le geometry, then the properties grouped by alignment (4-byte, 2-byte, 1-byte types),
zero padding to a multiple of 4 bytes, then per relationship a uint32le count and the uint64le
related ids (``by_id`` only). Lists of annotations (spatial cells, relationship index) are a
uint64le count, the encoded annotations (without relationships) and their uint64le ids.

The ``properties`` list in the info JSON is already in encoding order (4-byte types first), so
Neuroglancer's client (which sorts by alignment, stably) and neuroglancer's Python reader
(which uses the info order) agree. ``point_index`` comes first because that reader (2.41)
aligns ``uint32`` properties to 3 bytes: only offset 0 decodes correctly there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

WHITE = (255, 255, 255)
AXIS_COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)  # x red, y green, z blue
# Per-instance names need a uint16 enum; beyond that every point is named after the object
# (the instance id stays available through the relationship index).
MAX_NAMED_INSTANCES = 65535


@dataclass(frozen=True)
class Annotations:
    """Encoded annotations of one layer, one row per annotation (point or line)."""

    annotation_type: str  # "point" or "line"
    properties: list[dict[str, Any]]  # info JSON "properties", in encoding order
    records: np.ndarray  # (m, record_bytes) uint8: geometry + properties + padding
    ids: np.ndarray  # (m,) uint64 annotation ids
    lower: np.ndarray  # (m, 3) float64 bounding box of each annotation (float32-exact)
    upper: np.ndarray  # (m, 3)
    segments: np.ndarray | None  # (m,) uint64 related instance id, or None (no relationship)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Names:
    """The ``name`` enum: a label per value, and each annotation's value."""

    labels: list[str]
    values: np.ndarray  # (n,) int


def names_for(object_name: str, count: int, instance_id: np.ndarray | None = None) -> Names:
    """Label 0 = object name, or one label per instance: "<object name> <instance_id>"."""
    if instance_id is None or len(instance_id) == 0:
        return Names([object_name], np.zeros(count, np.int64))
    unique, inverse = np.unique(instance_id, return_inverse=True)
    if len(unique) > MAX_NAMED_INSTANCES:
        return Names([object_name], np.zeros(len(instance_id), np.int64))
    return Names([f"{object_name} {i}" for i in unique.tolist()], inverse.astype(np.int64))


def _name_property(names: Names) -> tuple[dict[str, Any], str]:
    dtype = "uint8" if len(names.labels) <= 256 else "uint16"
    spec = {
        "id": "name",
        "type": dtype,
        "enum_values": list(range(len(names.labels))),
        "enum_labels": names.labels,
    }
    return spec, "<u1" if dtype == "uint8" else "<u2"


def _record_dtype(geometry: int, fields: list[tuple[Any, ...]]) -> np.dtype:
    """Packed dtype: geometry, the property fields, zero padding to a multiple of 4."""
    layout: list[tuple[Any, ...]] = [("geometry", "<f4", (geometry,)), *fields]
    size = np.dtype(layout).itemsize
    if size % 4:
        layout.append(("padding", "u1", (4 - size % 4,)))
    return np.dtype(layout)


def point_annotations(
    xyz: np.ndarray,
    ids: np.ndarray,
    point_index: np.ndarray,
    names: Names,
    diameter: float,
    colours: np.ndarray | None,
    segments: np.ndarray | None,
) -> Annotations:
    """POINT annotations with properties point_index, diameter, name, color."""
    name_spec, name_dtype = _name_property(names)
    dtype = _record_dtype(
        3,
        [("point_index", "<u4"), ("diameter", "<f4"), ("name", name_dtype), ("color", "u1", (3,))],
    )
    rec = np.zeros(len(xyz), dtype)
    rec["geometry"] = xyz
    rec["point_index"] = point_index
    rec["diameter"] = diameter
    rec["name"] = names.values
    rec["color"] = WHITE if colours is None else colours
    position = rec["geometry"].astype(np.float64)  # float32-exact: what the reader decodes
    properties = [
        {"id": "point_index", "type": "uint32", "description": "record number in the source"},
        {"id": "diameter", "type": "float32", "description": "particle diameter (voxels)"},
        name_spec,
        {"id": "color", "type": "rgb"},
    ]
    return Annotations(
        "point", properties, _bytes(rec), ids.astype(np.uint64), position, position, segments
    )


def line_annotations(
    xyz: np.ndarray,
    rotation: np.ndarray,
    point_index: np.ndarray,
    names: Names,
    diameter: float,
    length: float,
) -> Annotations:
    """Three LINE annotations per oriented point, from the point along each rotation column.

    Line ``3 i + a`` runs from point ``i`` along column ``a`` of its rotation matrix (the
    particle's a-th axis in tomogram xyz) for ``length`` voxels; colour x red, y green, z blue.
    """
    name_spec, name_dtype = _name_property(names)
    fields = [
        ("point_index", "<u4"),
        ("diameter", "<f4"),
        ("name", name_dtype),
        ("point_color", "u1", (3,)),
        ("line_color", "u1", (3,)),
    ]
    dtype = _record_dtype(6, fields)
    n = len(xyz)
    rec = np.zeros((n, 3), dtype)
    start = np.repeat(xyz[:, None, :], 3, axis=1)  # (n, axis, xyz)
    end = xyz[:, None, :] + length * np.swapaxes(rotation, 1, 2)  # row a = column a of R
    rec["geometry"][..., :3] = start
    rec["geometry"][..., 3:] = end
    rec["point_index"] = point_index[:, None]
    rec["diameter"] = diameter
    rec["name"] = names.values[:, None]
    rec["point_color"] = WHITE
    rec["line_color"] = AXIS_COLOURS
    rec = rec.reshape(-1)
    geometry = rec["geometry"].astype(np.float64)
    properties = [
        {"id": "point_index", "type": "uint32", "description": "record number in the source"},
        {"id": "diameter", "type": "float32", "description": "particle diameter (voxels)"},
        name_spec,
        {"id": "point_color", "type": "rgb"},
        {"id": "line_color", "type": "rgb", "description": "axis: x red, y green, z blue"},
    ]
    ids = (3 * point_index.astype(np.uint64)[:, None] + np.arange(3, dtype=np.uint64)).ravel()
    lower = np.minimum(geometry[:, :3], geometry[:, 3:])
    upper = np.maximum(geometry[:, :3], geometry[:, 3:])
    return Annotations("line", properties, _bytes(rec), ids, lower, upper, None)


def _bytes(rec: np.ndarray) -> np.ndarray:
    return rec.view(np.uint8).reshape(len(rec), rec.dtype.itemsize)


def by_id_values(ann: Annotations) -> np.ndarray:
    """(m, size) uint8: each annotation's single encoding, with its related instance id."""
    if ann.segments is None:
        return ann.records
    size = ann.records.shape[1]
    dtype = np.dtype([("record", "u1", (size,)), ("count", "<u4"), ("segment", "<u8")])
    out = np.empty(len(ann), dtype)
    out["record"] = ann.records
    out["count"] = 1
    out["segment"] = ann.segments
    return _bytes(out)


def encode_lists(
    records: np.ndarray, ids: np.ndarray, members: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Multiple-annotation encodings of consecutive groups of ``members``.

    Group ``g`` is ``members[sum(counts[:g]) : sum(counts[:g+1])]`` (indices into ``records``
    and ``ids``). Returns the concatenated encodings (uint8) and each group's size in bytes.
    """
    counts = counts.astype(np.int64)
    sizes = 8 + counts * (records.shape[1] + 8)
    id_words = np.ascontiguousarray(ids, "<u8").view(np.uint32).reshape(-1, 2)
    # Few large groups: gather each group's parts straight into place (~5 us per group);
    # many small ones: three masked assignments over the whole buffer (~28 ns per entry).
    if len(counts) * 256 <= len(members):
        out = _lists_by_group(records.view(np.uint32), id_words, members, counts, sizes)
    else:
        out = _lists_by_mask(records.view(np.uint32), id_words, members, counts)
    return out.view(np.uint8), sizes


def _lists_by_group(
    words: np.ndarray,
    id_words: np.ndarray,
    members: np.ndarray,
    counts: np.ndarray,
    sizes: np.ndarray,
) -> np.ndarray:
    width = words.shape[1]
    out = np.empty(int(sizes.sum()) // 4, np.uint32)
    at = start = 0
    for count, end in zip(counts.tolist(), np.cumsum(counts).tolist(), strict=True):
        out[at : at + 2] = (count, 0)  # uint64le count (counts < 2**32)
        at += 2
        group = members[start:end]
        np.take(words, group, axis=0, out=out[at : at + count * width].reshape(count, width))
        at += count * width
        np.take(id_words, group, axis=0, out=out[at : at + 2 * count].reshape(count, 2))
        at += 2 * count
        start = end
    return out


def _lists_by_mask(
    words: np.ndarray, id_words: np.ndarray, members: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    # Word-run layout: [count (2 words), records (k * width), ids (2 k)] per group. Every part
    # is a whole number of words, in the same order as in the gathered arrays.
    width = words.shape[1]
    kind = np.repeat(
        np.tile(np.arange(3, dtype=np.uint8), len(counts)),
        np.stack([np.full_like(counts, 2), counts * width, 2 * counts], axis=1).ravel(),
    )
    out = np.empty(len(kind), np.uint32)
    header = np.zeros((len(counts), 2), np.uint32)
    header[:, 0] = counts  # uint64le count: low word (counts < 2**32)
    out[kind == 0] = header.ravel()
    out[kind == 1] = np.take(words, members, axis=0).ravel()  # np.take: 3x faster for rows
    out[kind == 2] = np.take(id_words, members, axis=0).ravel()
    return out
