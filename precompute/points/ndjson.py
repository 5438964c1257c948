"""Vectorised reading and validation of the portal's point ndjson files.

The fast path parses the whole file with :func:`pyarrow.json.read_json` against an explicit
schema (unknown keys are ignored, so extra per-record metadata costs nothing) and validates
columns with numpy. Only when pyarrow rejects the file does a per-line scan run, to name the
offending line (or, for input pyarrow is stricter about than JSON, e.g. ``"instance_id": 3.0``,
to build the same columns). Every error is an :class:`InputError` naming the file and the
1-based line of the record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from cryoet_ng.config import PrecomputeConfig
from cryoet_ng.store import TreePath, input_file, input_size
from precompute.errors import InputError
from precompute.points.spatial import column_range

# ndjson record ``type`` of each portal shape.
RECORD_TYPES = {
    "Point": "point",
    "OrientedPoint": "orientedPoint",
    "InstanceSegmentation": "instancePoint",
}
_LOCATION = pa.struct([("x", pa.float64()), ("y", pa.float64()), ("z", pa.float64())])
_ROTATION = pa.list_(pa.list_(pa.float64()))
_BLOCK_SIZE = 4 << 20  # pyarrow parses blocks in parallel; 16 MiB blocks balance worse


@dataclass(frozen=True)
class Records:
    """The validated records of one file, in file order (out-of-bounds ones possibly dropped)."""

    xyz: np.ndarray  # (n, 3) float64, voxels at the annotation's spacing
    index: np.ndarray  # (n,) int64: 0-based record number in the file (annotation ids)
    rotation: np.ndarray | None  # (n, 3, 3) float64, OrientedPoint only
    instance_id: np.ndarray | None  # (n,) uint64, InstanceSegmentation only
    out_of_bounds: int  # records outside the tomogram (dropped or kept, per policy)

    def __len__(self) -> int:
        return len(self.xyz)


@dataclass
class _Columns:
    """Raw columns before validation; ``bad`` lists (record, message) problems found so far."""

    types: pa.Array | None
    xyz: np.ndarray
    xyz_missing: np.ndarray
    rotation: np.ndarray | None
    instance_id: np.ndarray | None
    bad: list[tuple[int, str]]
    lines: np.ndarray | None = None  # 1-based line of each record, when already known


def read_records(
    path: TreePath,
    shape: str,
    options: PrecomputeConfig,
    volume_size: tuple[int, int, int] | None = None,
) -> Records:
    """Read and validate ``path`` (records of portal ``shape``); raise InputError if bad."""
    if shape not in RECORD_TYPES:
        raise InputError(path, f"no point converter for shape {shape!r}")
    try:
        empty = input_size(path) == 0
        columns = None if empty else _arrow_columns(path, shape)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        columns = _scan_columns(path, shape)  # names the bad line, or parses what arrow can't
    if columns is None or not len(columns.xyz):
        rotation = np.zeros((0, 3, 3)) if shape == "OrientedPoint" else None
        instance = np.zeros(0, np.uint64) if shape == "InstanceSegmentation" else None
        return Records(np.zeros((0, 3)), np.zeros(0, np.int64), rotation, instance, 0)
    return _validate(path, shape, columns, options, volume_size)


def _schema(shape: str) -> pa.Schema:
    fields = [("type", pa.string()), ("location", _LOCATION)]
    if shape == "OrientedPoint":
        fields.append(("xyz_rotation_matrix", _ROTATION))
    if shape == "InstanceSegmentation":
        fields.append(("instance_id", pa.int64()))
    return pa.schema(fields)


def _parse_options(shape: str) -> pj.ParseOptions:
    return pj.ParseOptions(explicit_schema=_schema(shape), unexpected_field_behavior="ignore")


def _arrow_columns(path: TreePath, shape: str) -> _Columns:
    table = pj.read_json(
        input_file(path),
        read_options=pj.ReadOptions(block_size=_BLOCK_SIZE),
        parse_options=_parse_options(shape),
        # malloc-backed, so memory freed after conversion is reused by numpy (lower peak RSS).
        memory_pool=pa.system_memory_pool(),
    )
    return _table_columns(table, shape)


def read_batches(
    path: Path,
    shape: str,
    options: PrecomputeConfig,
    volume_size: tuple[int, int, int] | None,
    size: int,
) -> Iterator[Records]:
    """The validated records of ``path`` in batches of at most ``size`` records, parsed by
    pyarrow's streaming reader (memory: one parse block and one batch). Raises InputError
    for bad input, as :func:`read_records` (which this falls back to, once, for what
    pyarrow rejects: to name the line, or to read what only the JSON scan accepts)."""
    try:
        if path.stat().st_size == 0:
            return
        reader = pj.open_json(
            str(path),
            read_options=pj.ReadOptions(block_size=_BLOCK_SIZE),
            parse_options=_parse_options(shape),
            memory_pool=pa.system_memory_pool(),
        )
        first = 0
        for block in reader:
            table = pa.Table.from_batches([block])
            for start in range(0, table.num_rows, size):
                part = table.slice(start, size)
                columns = _table_columns(part, shape)
                yield _validate(path, shape, columns, options, volume_size, first)
                first += part.num_rows
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise Rejected(path) from exc


class Rejected(Exception):
    """pyarrow could not parse the file: the caller reads it with :func:`read_records`."""


def _table_columns(table: pa.Table, shape: str) -> _Columns:
    # pyarrow's JSON reader does not check that strings are UTF-8; a full validation of
    # the one string column read raises ArrowInvalid, so the line scan names the line.
    table.column("type").validate(full=True)
    n = table.num_rows
    bad: list[tuple[int, str]] = []
    location = table.column("location").combine_chunks()
    xyz = np.empty((n, 3))
    missing = np.asarray(location.is_null())
    for axis, name in enumerate("xyz"):
        values = location.field(name)
        xyz[:, axis] = values.fill_null(0.0).to_numpy(zero_copy_only=False)
        missing = missing | np.asarray(values.is_null())
    rotation = None
    if shape == "OrientedPoint":
        rotation = _arrow_rotation(table.column("xyz_rotation_matrix").combine_chunks(), bad)
    instance = None
    if shape == "InstanceSegmentation":
        ids = table.column("instance_id").combine_chunks()
        _first(bad, np.asarray(ids.is_null()), "missing instance_id")
        instance = ids.fill_null(0).to_numpy(zero_copy_only=False)
        _first(bad, instance < 0, "instance_id must be a non-negative integer")
        instance = instance.astype(np.uint64)
    return _Columns(table.column("type").combine_chunks(), xyz, missing, rotation, instance, bad)


def _arrow_rotation(matrices: pa.ListArray, bad: list[tuple[int, str]]) -> np.ndarray:
    """(n, 3, 3) rotations; shape problems are added to ``bad`` (then all rows are identity)."""
    n = len(matrices)
    rows = pc.list_value_length(matrices).fill_null(-1).to_numpy(zero_copy_only=False)
    _first(bad, rows == -1, "missing xyz_rotation_matrix")
    inner = matrices.flatten()  # skips null matrices
    inner_owner = np.repeat(np.arange(n), np.maximum(rows, 0))
    cols = pc.list_value_length(inner).fill_null(-1).to_numpy(zero_copy_only=False)
    values = inner.flatten()
    wrong = (rows != 3) & (rows != -1)
    wrong[inner_owner[cols != 3]] = True
    if values.null_count:
        value_owner = np.repeat(inner_owner, np.maximum(cols, 0))
        wrong[value_owner[np.asarray(values.is_null())]] = True
    out = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    if wrong.any():
        _first(bad, wrong, "xyz_rotation_matrix must be a 3x3 array of numbers")
    else:
        out[rows == 3] = values.to_numpy(zero_copy_only=False).reshape(-1, 3, 3)
    return out


def _first(bad: list[tuple[int, str]], mask: np.ndarray, message: str) -> None:
    """Record the first row of ``mask`` (if any) with ``message``."""
    hits = np.flatnonzero(mask)
    if hits.size:
        bad.append((int(hits[0]), message))


def _validate(
    path: TreePath,
    shape: str,
    cols: _Columns,
    options: PrecomputeConfig,
    volume_size: tuple[int, int, int] | None,
    first: int = 0,
) -> Records:
    """Validate columns of records ``first, first + 1, ...`` of the file."""
    bad = list(cols.bad)
    expected = RECORD_TYPES[shape]
    if cols.types is not None:
        _check_types(cols.types, expected, shape, bad)
    _first(bad, cols.xyz_missing, "missing or non-numeric location (x, y, z)")
    # Row-wise checks only when the column ranges say some row fails (the common case is
    # clean input: per-column min/max cost a fraction of row-wise reductions).
    low, high = column_range(cols.xyz)
    finite: np.ndarray | bool = True
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        finite = np.isfinite(cols.xyz).all(axis=1)
        _first(bad, ~finite & ~cols.xyz_missing, "coordinate is NaN or infinite")
    if cols.rotation is not None and len(cols.rotation):
        _check_rotations(cols.rotation, options.rotation_tolerance, bad)
    outside: np.ndarray = np.zeros(len(cols.xyz), bool)
    if volume_size is not None and len(cols.xyz):
        top = np.asarray(volume_size, np.float64) - 1.0
        if not ((low >= 0).all() and (high <= top).all()):
            outside = np.asarray(((cols.xyz < 0) | (cols.xyz > top)).any(axis=1) & finite)
        if options.out_of_bounds == "error":
            size = "x".join(str(s) for s in volume_size)
            _first(bad, outside, f"coordinate outside the tomogram (0 <= c <= size-1, size {size})")
    if bad:
        record, message = min(bad, key=lambda item: item[0])
        known = cols.lines
        line = int(known[record]) if known is not None else _line_of(path, first + record)
        raise InputError(path, message, line)
    index = np.arange(first, first + len(cols.xyz), dtype=np.int64)
    keep = ~outside if options.out_of_bounds == "drop" else slice(None)
    return Records(
        xyz=cols.xyz[keep],
        index=index[keep],
        rotation=None if cols.rotation is None else cols.rotation[keep],
        instance_id=None if cols.instance_id is None else cols.instance_id[keep],
        out_of_bounds=int(outside.sum()),
    )


def _check_types(types: pa.Array, expected: str, shape: str, bad: list[tuple[int, str]]) -> None:
    # A record without "type" is taken as the file's type; any other value is an error.
    if all(v is None or v == expected for v in pc.unique(types).to_pylist()):
        return
    wrong = np.asarray(pc.fill_null(pc.not_equal(types, expected), False))
    record = int(np.flatnonzero(wrong)[0])
    value = types[record].as_py()
    if value in RECORD_TYPES.values():
        bad.append((record, f"record type {value!r} in a {shape} file (expected {expected!r})"))
    else:
        bad.append((record, f"unknown record type {value!r} (expected {expected!r})"))


def _check_rotations(rotation: np.ndarray, tolerance: float, bad: list[tuple[int, str]]) -> None:
    """A proper rotation: orthonormal (|R Rᵀ - I| <= tol elementwise) and det(R) = +1 (± tol)."""
    gram = np.einsum("nij,nkj->nik", rotation, rotation)
    error = np.abs(gram - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(rotation)
    wrong = ~(error <= tolerance) | ~(np.abs(det - 1.0) <= tolerance)
    hits = np.flatnonzero(wrong)
    if hits.size:
        i = int(hits[0])
        bad.append(
            (
                i,
                "xyz_rotation_matrix is not a proper rotation "
                f"(max |R Rt - I| = {error[i]:.3g}, det = {det[i]:.4g}, tolerance {tolerance:g})",
            )
        )


def _line_of(path: TreePath, record: int) -> int:
    """1-based line of the ``record``-th non-blank line (pyarrow skips blank lines)."""
    seen = -1
    number = 0
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if line.strip():
            seen += 1
            if seen == record:
                return number
    return number  # pragma: no cover - record always exists


# --- slow path: per-line scan, only when pyarrow rejects the file -------------------------


def _scan_columns(path: TreePath, shape: str) -> _Columns:
    """Parse line by line; raise InputError at the first line that is not a valid record."""
    types: list[str | None] = []
    xyz: list[tuple[float, float, float]] = []
    rotation: list[Any] = []
    instance: list[int] = []
    lines: list[int] = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(path, f"malformed JSON: {exc}", number) from exc
        try:
            fields = _record_fields(obj, shape)
        except ValueError as exc:
            raise InputError(path, str(exc), number) from exc
        types.append(fields[0])
        xyz.append(fields[1])
        rotation.append(fields[2])
        instance.append(fields[3])
        lines.append(number)
    return _Columns(
        types=pa.array(types, pa.string()),
        xyz=np.asarray(xyz, np.float64).reshape(-1, 3),
        xyz_missing=np.zeros(len(xyz), bool),
        rotation=np.asarray(rotation, np.float64).reshape(-1, 3, 3)
        if shape == "OrientedPoint"
        else None,
        instance_id=np.asarray(instance, np.uint64) if shape == "InstanceSegmentation" else None,
        bad=[],
        lines=np.asarray(lines, np.int64),
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _record_fields(obj: Any, shape: str) -> tuple[str | None, Any, Any, int]:
    if not isinstance(obj, dict):
        raise ValueError(f"record is not a JSON object (got {type(obj).__name__})")
    kind = obj.get("type")
    if kind is not None and not isinstance(kind, str):
        raise ValueError(f"unknown record type {kind!r} (expected {RECORD_TYPES[shape]!r})")
    location = obj.get("location")
    if not isinstance(location, dict) or not all(_number(location.get(a)) for a in "xyz"):
        raise ValueError("missing or non-numeric location (x, y, z)")
    xyz = tuple(float(location[a]) for a in "xyz")
    rotation = None
    if shape == "OrientedPoint":
        rotation = obj.get("xyz_rotation_matrix")
        if rotation is None:
            raise ValueError("missing xyz_rotation_matrix")
        shaped = isinstance(rotation, list) and len(rotation) == 3
        if not shaped or not all(
            isinstance(r, list) and len(r) == 3 and all(map(_number, r)) for r in rotation
        ):
            raise ValueError("xyz_rotation_matrix must be a 3x3 array of numbers")
    instance = 0
    if shape == "InstanceSegmentation":
        value = obj.get("instance_id")
        if value is None:
            raise ValueError("missing instance_id")
        integral = isinstance(value, int) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer()
        )
        if isinstance(value, bool) or not integral or not 0 <= value < 2**64:
            raise ValueError(f"instance_id must be a non-negative integer (got {value!r})")
        instance = int(value)
    return kind, xyz, rotation, instance
