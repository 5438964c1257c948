"""Point-like annotations (Point, OrientedPoint, InstanceSegmentation) -> precomputed annotations.

:func:`convert_records` encodes validated records (:mod:`.ndjson`), builds the multi-level
spatial index and writes ``info``, ``by_id/``, ``spatial<i>/`` and (instances)
``rel_instance/`` into a temporary directory that is renamed into place, and returns the
summary (the runner writes it). Files beyond the memory budget go through :mod:`.external`
(see :mod:`.convert`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoet_ng.atomic import atomic_directory
from cryoet_ng.config import LayerStyle, PrecomputeConfig
from cryoet_ng.instance_colours import instance_colours_rgb
from cryoet_ng.summaries import Grid, Occupancy, Summary
from cryoet_ng.vectors import triple
from precompute.jobs import ANGSTROM, AnnotationJob
from precompute.points import encode
from precompute.points.encode import Annotations
from precompute.points.ndjson import Records
from precompute.points.sharded import ShardSpec, write_sharded, write_unsharded
from precompute.points.spatial import Bounds, Level, build_levels, column_range

RELATIONSHIP = "instance"  # filter instance points by instance id (= segment id of the mask)


@dataclass(frozen=True)
class Written:
    """What :func:`write_layer` produced."""

    info: dict[str, Any]
    annotations: int  # points, or lines (three per oriented point)
    files: int
    levels: list[Level]


def convert_records(
    job: AnnotationJob, records: Records, options: PrecomputeConfig, style: LayerStyle
) -> Summary:
    """Write validated ``records`` (all in memory) into ``job.output``; return the summary."""
    scale = job.voxel_spacing * ANGSTROM
    # The seed and the summary's statistics are independent of the layer: compute them on the
    # other core (hashlib and numpy release the GIL in the bulk operations).
    with ThreadPoolExecutor(max_workers=1) as pool:
        seed = pool.submit(seed_of, records)
        summary_future = pool.submit(_summary, job, records, options)
        annotations = described(annotations_for(job, records, style), job)
        with atomic_directory(job.output) as tmp:
            written = write_layer(tmp, annotations, options, scale, seed.result())
        summary = summary_future.result()
    summary.extra.update(
        annotation_type=written.info["annotation_type"],
        annotations=written.annotations,
        levels=len(written.levels),
        files=written.files,
    )
    return summary


def diameter_voxels(job: AnnotationJob, style: LayerStyle) -> float:
    """The particle diameter of cryoet_ng/particles.py, in voxels at the job's spacing."""
    if job.diameter_angstrom and job.voxel_spacing > 0:
        return job.diameter_angstrom / job.voxel_spacing
    if style.default_diameter_voxels is not None:
        return style.default_diameter_voxels
    return style.default_diameter_nm * 10.0 / job.voxel_spacing


def annotations_for(job: AnnotationJob, records: Records, style: LayerStyle) -> Annotations:
    """Encode the records as the portal's viewer expects them for ``job.shape``."""
    diameter = diameter_voxels(job, style)
    names = encode.names_for(job.object_name, len(records), records.instance_id)
    if job.shape == "OrientedPoint":
        assert records.rotation is not None
        length = style.oriented_line_factor * diameter
        return encode.line_annotations(
            records.xyz, records.rotation, records.index, names, diameter, length
        )
    colours = None
    if records.instance_id is not None:
        colours = instance_colours_rgb(records.instance_id)
    return encode.point_annotations(
        records.xyz, records.index, records.index, names, diameter, colours, records.instance_id
    )


def described(annotations: Annotations, job: AnnotationJob) -> Annotations:
    """The ``name`` property carries the annotation's description (status, method, authors,
    deposition): Neuroglancer shows a property's description with a selected annotation's
    values."""
    if job.about is None:
        return annotations
    text = job.about.describe()
    properties = [
        dict(spec, description=text) if spec["id"] == "name" else spec
        for spec in annotations.properties
    ]
    return dataclasses.replace(annotations, properties=properties)


def seed_of(records: Records) -> int:
    """Seed of the spatial index's random sample: a hash of the input, never the clock."""
    digest = hashlib.blake2b(np.ascontiguousarray(records.xyz).tobytes(), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


def priority_order(annotations: Annotations, seed: int) -> np.ndarray:
    """Random order of the annotations; the three lines of an oriented point stay together."""
    per_point = 3 if annotations.annotation_type == "line" else 1
    points = np.random.default_rng(seed).permutation(len(annotations) // per_point)
    if per_point == 1:
        return points
    return (per_point * points[:, None] + np.arange(per_point)).ravel()


def write_layer(
    directory: Path, ann: Annotations, options: PrecomputeConfig, scale_m: float, seed: int
) -> Written:
    """Write info and every index of ``ann`` into ``directory`` (coordinates in voxels)."""
    sharded = len(ann) >= options.shard_min_annotations
    # by_id does not depend on the spatial index: write it on the other core meanwhile.
    with ThreadPoolExecutor(max_workers=1) as pool:
        by_id = pool.submit(_write_by_id, directory / "by_id", ann, sharded)
        written = _write_spatial(directory, ann, options, scale_m, seed, sharded)
        entry, count = by_id.result()
    written.info["by_id"].update(entry)
    (directory / "info").write_text(json.dumps(written.info, indent=1, sort_keys=True) + "\n")
    return Written(written.info, written.annotations, written.files + count + 1, written.levels)


def _write_by_id(directory: Path, ann: Annotations, sharded: bool) -> tuple[dict[str, Any], int]:
    values = encode.by_id_values(ann)
    sizes = np.full(len(ann), values.shape[1], np.int64)
    return _write_index(directory, ann.ids, values.reshape(-1), sizes, sharded)


def _write_spatial(
    directory: Path,
    ann: Annotations,
    options: PrecomputeConfig,
    scale_m: float,
    seed: int,
    sharded: bool,
) -> Written:
    """The spatial levels and the relationship index; the info without by_id's sharding."""
    bounds = Bounds.enclosing(ann.lower, ann.upper) if len(ann) else Bounds(np.zeros(3), np.ones(3))
    order = priority_order(ann, seed)
    levels = build_levels(ann.lower, ann.upper, bounds, order, options.annotation_limit)
    # Level members are positions in priority order: with the records permuted once, every
    # level gathers them almost sequentially (random row gathers cost ~3x more). np.take:
    # 3x faster than fancy indexing for rows.
    records, ids = np.take(ann.records.view(np.uint32), order, axis=0), ann.ids[order]
    files = 0
    info: dict[str, Any] = {
        "@type": "neuroglancer_annotations_v1",
        "dimensions": {axis: [scale_m, "m"] for axis in "xyz"},
        "lower_bound": bounds.lower.tolist(),
        "upper_bound": bounds.upper.tolist(),
        "annotation_type": ann.annotation_type.upper(),
        "properties": ann.properties,
        "relationships": [],
        "by_id": {"key": "by_id"},
        "spatial": [],
    }
    for number, level in enumerate(levels):
        data, sizes = encode.encode_lists(records.view(np.uint8), ids, level.members, level.counts)
        names = ["_".join(map(str, cell)) for cell in level.cells.tolist()] if not sharded else None
        key = f"spatial{number}"
        entry, count = _write_index(directory / key, level.keys, data, sizes, sharded, names)
        files += count
        info["spatial"].append(
            {
                "key": key,
                "grid_shape": list(level.grid_shape),
                "chunk_size": list(level.chunk_size),
                "limit": level.limit,
                **entry,
            }
        )
    del records, ids
    if ann.segments is not None:
        order = np.argsort(ann.segments, kind="stable")
        keys, counts = np.unique(ann.segments[order], return_counts=True)
        data, sizes = encode.encode_lists(ann.records, ann.ids, order, counts)
        key = f"rel_{RELATIONSHIP}"
        entry, count = _write_index(directory / key, keys, data, sizes, sharded)
        files += count
        info["relationships"].append({"id": RELATIONSHIP, "key": key, **entry})
    return Written(info, len(ann), files, levels)


def _write_index(
    directory: Path,
    keys: np.ndarray,
    data: np.ndarray,
    sizes: np.ndarray,
    sharded: bool,
    names: list[str] | None = None,
) -> tuple[dict[str, Any], int]:
    """Write one uint64-keyed index (``keys`` ascending); return its info entry and file count."""
    if not sharded:
        names = names if names is not None else [str(k) for k in keys.tolist()]
        return {}, write_unsharded(directory, names, data, sizes)
    spec = ShardSpec.for_keys(keys)
    # Ascending keys are already in shard order: preshift_bits makes every key fit the hash bits.
    assert spec.order(keys) is None, "keys must be ascending and unique"
    return {"sharding": spec.to_json()}, write_sharded(directory, spec, keys, data, sizes)


def _summary(job: AnnotationJob, records: Records, options: PrecomputeConfig) -> Summary:
    """The summary without the layer's own figures (added once it is written)."""
    scale = job.voxel_spacing * ANGSTROM
    count = len(records)
    low, high = column_range(records.xyz) if count else (None, None)
    grid = Grid.for_extent(layer_extent(job, high))
    instances = None if records.instance_id is None else len(np.unique(records.instance_id))
    occupancy = _occupancy(grid, records.xyz, scale)
    return layer_summary(
        job, options, (count, low, high), occupancy, records.out_of_bounds, instances
    )


def layer_extent(job: AnnotationJob, high: np.ndarray | None) -> tuple[float, float, float]:
    """The tomogram's extent (m), or the points' when the job does not know it."""
    if job.extent_m is not None:
        return job.extent_m
    if high is None:
        return (0.0, 0.0, 0.0)
    return triple(np.maximum(high * job.voxel_spacing * ANGSTROM, 0).tolist())


def layer_summary(
    job: AnnotationJob,
    options: PrecomputeConfig,
    extent: tuple[int, np.ndarray | None, np.ndarray | None],
    occupancy: Occupancy,
    out_of_bounds: int,
    instances: int | None,
) -> Summary:
    """The summary of ``count`` records spanning ``low..high`` (voxels)."""
    count, low, high = extent
    scale = job.voxel_spacing * ANGSTROM
    bounds = None
    if count and low is not None and high is not None:
        bounds = ((low * scale).tolist(), (high * scale).tolist())
    extra: dict[str, Any] = {
        "shape": job.shape,
        "annotation_id": job.annotation_id,
        "output": job.output.name,
        "source": str(job.source),
        "voxel_spacing": job.voxel_spacing,
        "out_of_bounds": out_of_bounds,
        "out_of_bounds_policy": options.out_of_bounds,
    }
    if instances is not None:
        extra["instances"] = instances
    return Summary(
        kind="annotation",
        count=count,
        bounds=bounds,
        occupancy=occupancy,
        extra=extra,
    )


def _occupancy(grid: Grid, xyz: np.ndarray, scale: float, block: int = 1 << 17) -> Occupancy:
    """Occupancy.of_points in blocks of points, so its temporaries stay small (peak memory)."""
    counts = np.zeros(grid.size, np.int64)
    for start in range(0, len(xyz), block):
        part = Occupancy.of_points(grid, xyz[start : start + block] * scale)
        counts += part.values
    return Occupancy(grid, "count", counts)
