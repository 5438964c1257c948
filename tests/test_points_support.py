"""Shared helpers of the point-annotation tests (no tests here).

Everything is read back with readers we did not write: neuroglancer's
``read_precomputed_annotations.AnnotationReader`` (on tensorstore kvstores) and tensorstore's
``neuroglancer_uint64_sharded`` kvstore.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts
from neuroglancer.read_precomputed_annotations import AnnotationReader

from cryoet_ng.config import LayerStyle, PrecomputeConfig
from cryoet_ng.summaries import Summary
from precompute.jobs import AnnotationJob
from precompute.points import convert

SHAPE_TYPES = {
    "Point": "point",
    "OrientedPoint": "orientedPoint",
    "InstanceSegmentation": "instancePoint",
}


def random_rotations(n: int, seed: int) -> np.ndarray:
    """(n, 3, 3) uniformly random proper rotations (QR of Gaussian matrices, sign-fixed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    return q


def write_ndjson(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def point_records(xyz: np.ndarray, shape: str = "Point", **columns: Any) -> list[dict[str, Any]]:
    """Portal records for positions ``xyz`` (+ ``rotation`` (n,3,3) or ``instance_id`` (n,))."""
    out = []
    for i, (x, y, z) in enumerate(np.asarray(xyz, float).tolist()):
        record: dict[str, Any] = {"type": SHAPE_TYPES[shape], "location": {"x": x, "y": y, "z": z}}
        if "rotation" in columns:
            record["xyz_rotation_matrix"] = np.asarray(columns["rotation"][i]).tolist()
        if "instance_id" in columns:
            record["instance_id"] = int(columns["instance_id"][i])
        out.append(record)
    return out


def make_job(tmp: Path, source: Path, shape: str = "Point", **fields: Any) -> AnnotationJob:
    defaults: dict[str, Any] = {
        "annotation_id": "101",
        "object_name": "ribosome",
        "voxel_spacing": 13.48,
    }
    defaults.update(fields)
    output = tmp / "out" / f"{defaults['annotation_id']}-{shape.lower()}"
    return AnnotationJob(source=source, shape=shape, output=output, **defaults)


def run(
    tmp: Path,
    records: list[dict[str, Any]],
    shape: str = "Point",
    options: PrecomputeConfig | None = None,
    style: LayerStyle | None = None,
    **fields: Any,
) -> tuple[AnnotationJob, Summary]:
    source = write_ndjson(tmp / "annotations.ndjson", records)
    job = make_job(tmp, source, shape, **fields)
    summary = convert(job, options or PrecomputeConfig(), style or LayerStyle())
    summary.write(job.summary)  # as the runner does once a converter returns
    return job, summary


def reader(output: Path) -> AnnotationReader:
    return AnnotationReader(f"file://{output}/")


def geometry(annotation: Any) -> np.ndarray:
    if hasattr(annotation, "point_a"):
        return np.concatenate([annotation.point_a, annotation.point_b]).astype(np.float64)
    return np.asarray(annotation.point, np.float64)


def stored_cells(r: AnnotationReader, level: int) -> list[tuple[int, int, int]]:
    """Cells present in a spatial level, listed with tensorstore (sharded keys are decoded
    compressed Morton codes, unsharded ones ``x_y_z`` file names)."""
    index = r.spatial[level]
    spec = r.base_spec.copy()
    spec.path += index.metadata["key"] + "/"
    grid = index.metadata["grid_shape"]
    if "sharding" not in index.metadata:
        kv = ts.KvStore.open(spec).result()
        return [tuple(int(c) for c in k.decode().split("_")) for k in kv.list().result()]
    sharded = {
        "driver": "neuroglancer_uint64_sharded",
        "base": spec,
        "metadata": index.metadata["sharding"],
    }
    kv = ts.KvStore.open(sharded).result()
    return [_unmorton(struct.unpack(">Q", k)[0], grid) for k in kv.list().result()]


def _unmorton(code: int, grid: list[int]) -> tuple[int, int, int]:
    cell = [0, 0, 0]
    out_bit = 0
    for bit in range(32):
        for axis, size in enumerate(grid):
            if (size - 1) >> bit:
                cell[axis] |= ((code >> out_bit) & 1) << bit
                out_bit += 1
    return tuple(cell)  # type: ignore[return-value]


def all_spatial(r: AnnotationReader) -> list[tuple[int, tuple[int, ...], list[Any]]]:
    """Every (level, cell, annotations) of the spatial index, read with neuroglancer's reader."""
    return [
        (level, cell, r.spatial[level][cell])
        for level in range(len(r.spatial))
        for cell in stored_cells(r, level)
    ]


def query_boxes(
    r: AnnotationReader, lower: np.ndarray, upper: np.ndarray
) -> dict[int, tuple[int, ...]]:
    """Ids of annotations found in the cells meeting [lower, upper] whose box meets it.

    Visits, at every level, the cells that intersect the query (cell arithmetic of
    neuroglancer's reader, get_within_spatial_bounds); cells absent from the index are empty,
    so only stored cells are read. An annotation meets the box when its bounding box does
    (points: lies in it, bounds inclusive).
    """
    base = np.asarray(r.lower_bound)
    found: dict[int, tuple[int, ...]] = {}
    for level, index in enumerate(r.spatial):
        chunk = np.asarray(index.metadata["chunk_size"])
        grid = np.asarray(index.metadata["grid_shape"])
        first = np.maximum(((lower - base) // chunk).astype(np.int64), 0)
        last = np.minimum(((upper - base) // chunk).astype(np.int64) + 1, grid)
        for cell in stored_cells(r, level):
            if not (np.all(np.asarray(cell) >= first) and np.all(np.asarray(cell) < last)):
                continue
            for a in index[cell]:
                g = geometry(a).reshape(-1, 3).astype(np.float32).astype(np.float64)
                if np.all(g.min(0) <= upper) and np.all(g.max(0) >= lower):
                    found[int(a.id)] = (level, *cell)
    return found
