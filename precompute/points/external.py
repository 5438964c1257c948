"""Point files larger than ``precompute.points_in_memory`` records, in bounded memory.

The same layer as :func:`.writer.write_layer`, byte for byte (tests compare both paths),
built from disk instead of from whole-layer arrays:

1. parse and validate in batches (pyarrow's streaming reader), spilling each batch's
   positions, record numbers and instance ids to files, while the seed (a hash of every
   position), the bounds and the instance ids are accumulated;
2. the priority rank and finest spatial cell of every point go to a compact file (12 bytes
   a point), and the levels are computed from it in passes (:mod:`.thresholds`);
3. an external distribution sort by spatial cell: each batch is encoded and its records
   appended to bucket files, a bucket being a run of consecutive cells (in index-key order)
   of one level holding at most a batch of points, so that each bucket is sorted in memory
   and streamed into the level's shard (:class:`.sharded.ShardWriter`); ``by_id`` streams
   in file order, and the relationship index is bucketed by instance id the same way.

Memory: a batch (``points_in_memory`` records) and its encodings, plus a 4-byte rank per
point while the compact file is written. OrientedPoint files (lines can span several cells)
stay on the in-memory path.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from cryoet_ng.atomic import atomic_directory
from cryoet_ng.config import LayerStyle, PrecomputeConfig
from cryoet_ng.instance_colours import instance_colours_rgb
from cryoet_ng.store import input_size, local_input
from cryoet_ng.summaries import Grid, Occupancy, Summary
from precompute.errors import InputError
from precompute.jobs import ANGSTROM, AnnotationJob
from precompute.points import encode
from precompute.points.ndjson import Records, Rejected, read_batches
from precompute.points.sharded import ShardSpec, ShardWriter, write_unsharded
from precompute.points.spatial import Bounds, _cell_of, _schedule, column_range
from precompute.points.thresholds import (
    LevelPlan,
    emission_levels,
    pack,
    plan_levels,
)
from precompute.points.writer import RELATIONSHIP, diameter_voxels, layer_extent, layer_summary

SHAPES = ("Point", "InstanceSegmentation")
# Records per batch and per bucket: about 400 bytes a record are live while a batch is
# encoded and distributed (20 M points: 2.06 GB peak with 5 M-record batches).
MAX_BATCH = 1_000_000
__all__ = ["Rejected", "convert_external", "wanted"]


@dataclass
class Spilled:
    """What pass 1 wrote and accumulated."""

    folder: Path
    count: int = 0
    out_of_bounds: int = 0
    low: np.ndarray = field(default_factory=lambda: np.full(3, np.inf))
    high: np.ndarray = field(default_factory=lambda: np.full(3, -np.inf))
    # The same of the positions as stored (float32): the layer's bounds and cells use them.
    low32: np.ndarray = field(default_factory=lambda: np.full(3, np.inf))
    high32: np.ndarray = field(default_factory=lambda: np.full(3, -np.inf))
    digest: Any = field(default_factory=lambda: hashlib.blake2b(digest_size=8))
    instances: np.ndarray | None = None  # unique instance ids (InstanceSegmentation)
    instance_counts: np.ndarray | None = None
    batch: int = 1

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """(xyz, record numbers, instance ids) in file order, a batch at a time."""
        files = [self.folder / n for n in ("xyz", "index", "instance")]
        with open(files[0], "rb") as xyz, open(files[1], "rb") as index:
            ids: IO[bytes] | None = open(files[2], "rb") if files[2].exists() else None  # noqa: SIM115
            try:
                for _ in range(0, self.count, self.batch):
                    a = np.fromfile(xyz, np.float64, 3 * self.batch).reshape(-1, 3)
                    b = np.fromfile(index, np.int64, self.batch)
                    c = None if ids is None else np.fromfile(ids, np.uint64, self.batch)
                    yield a, b, c
            finally:
                if ids is not None:
                    ids.close()


def wanted(job: AnnotationJob, options: PrecomputeConfig) -> bool:
    """Whether the file may exceed the in-memory budget (portal records are > 40 bytes)."""
    if job.shape not in SHAPES:
        return False
    try:
        return input_size(job.source) > 40 * options.points_in_memory
    except OSError:  # StoreError is an OSError
        return False  # the in-memory reader reports it


def convert_external(
    job: AnnotationJob, options: PrecomputeConfig, style: LayerStyle
) -> Summary | Records:
    """Convert ``job`` from disk; or, when it turns out to fit the budget, its records (for
    the in-memory path)."""
    job.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-spill-", dir=job.output.parent) as tmp:
        # An object-store input is streamed to the spill folder first: bounded memory.
        source = local_input(job.source, Path(tmp))
        try:
            spilled = _spill(job, source, options, Path(tmp) / "spill")
        except InputError as exc:
            if source == job.source:
                raise
            raise InputError(job.source, exc.reason, exc.line) from exc  # name the object
        if spilled.count <= options.points_in_memory:
            return _load(spilled)
        return _convert(job, options, style, spilled)


def _spill(job: AnnotationJob, source: Path, options: PrecomputeConfig, folder: Path) -> Spilled:
    spilled = Spilled(folder, batch=max(1, min(options.points_in_memory, MAX_BATCH)))
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "xyz", "wb") as xyz, open(folder / "index", "wb") as index:
        ids = open(folder / "instance", "wb") if job.shape == "InstanceSegmentation" else None  # noqa: SIM115
        try:
            batches = read_batches(source, job.shape, options, job.volume_size_xyz, spilled.batch)
            for records in _rebatch(batches, spilled.batch):
                spilled.count += len(records)
                spilled.out_of_bounds += records.out_of_bounds
                if len(records):
                    low, high = column_range(records.xyz)
                    spilled.low = np.minimum(spilled.low, low)
                    spilled.high = np.maximum(spilled.high, high)
                    low, high = column_range(_stored(records.xyz))
                    spilled.low32 = np.minimum(spilled.low32, low)
                    spilled.high32 = np.maximum(spilled.high32, high)
                data = np.ascontiguousarray(records.xyz)
                spilled.digest.update(data.tobytes())
                data.tofile(xyz)
                records.index.astype(np.int64).tofile(index)
                if ids is not None and records.instance_id is not None:
                    records.instance_id.astype(np.uint64).tofile(ids)
                    _add_instances(spilled, records.instance_id)
        finally:
            if ids is not None:
                ids.close()
    if job.shape == "InstanceSegmentation" and spilled.instances is None:
        spilled.instances = np.zeros(0, np.uint64)
        spilled.instance_counts = np.zeros(0, np.int64)
    return spilled


def _rebatch(batches: Iterator[Records], size: int) -> Iterator[Records]:
    """Records in batches of exactly ``size`` (the last shorter): the spill files are then
    read back in the same batches."""
    pending: list[Records] = []
    held = 0
    for records in batches:
        pending.append(records)
        held += len(records)
        while held >= size:
            whole = _concat(pending)
            yield _slice(whole, 0, size)
            rest = _slice(whole, size, len(whole))
            pending, held = [rest], len(rest)
    if held:
        yield _concat(pending)
    elif not pending:
        return


def _concat(parts: list[Records]) -> Records:
    if len(parts) == 1:
        return parts[0]
    rotation = None
    instance = None
    if parts[0].instance_id is not None:
        instance = np.concatenate([p.instance_id for p in parts])
    return Records(
        np.concatenate([p.xyz for p in parts]),
        np.concatenate([p.index for p in parts]),
        rotation,
        instance,
        sum(p.out_of_bounds for p in parts),
    )


def _slice(records: Records, a: int, b: int) -> Records:
    instance = None if records.instance_id is None else records.instance_id[a:b]
    oob = records.out_of_bounds if a == 0 else 0
    return Records(records.xyz[a:b], records.index[a:b], None, instance, oob)


def _add_instances(spilled: Spilled, ids: np.ndarray) -> None:
    found, counts = np.unique(ids, return_counts=True)
    if spilled.instances is None or spilled.instance_counts is None:
        spilled.instances, spilled.instance_counts = found, counts
        return
    merged = np.concatenate([spilled.instances, found])
    spilled.instances, inverse = np.unique(merged, return_inverse=True)
    weights = np.concatenate([spilled.instance_counts, counts])
    spilled.instance_counts = np.bincount(inverse, weights, len(spilled.instances)).astype(np.int64)


def _load(spilled: Spilled) -> Records:
    parts = list(spilled.batches())
    xyz = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 3))
    index = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    instance = None
    if spilled.instances is not None:
        instance = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.uint64)
    return Records(xyz, index, None, instance, spilled.out_of_bounds)


def _convert(
    job: AnnotationJob, options: PrecomputeConfig, style: LayerStyle, spilled: Spilled
) -> Summary:
    scale = job.voxel_spacing * ANGSTROM
    bounds = Bounds.enclosing(spilled.low32[None], spilled.high32[None])
    schedule = _schedule(bounds)
    finest_grid, finest_chunk = schedule[-1]
    bits = np.log2(finest_grid).astype(np.int64)
    compact = spilled.folder / "cells"
    _write_cells(spilled, compact, bounds, finest_chunk, finest_grid)

    def cells() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with open(compact, "rb") as handle:
            for _ in range(0, spilled.count, spilled.batch):
                rows = np.fromfile(handle, _CELL, spilled.batch)
                yield rows["packed"], rows["rank"]

    plans = plan_levels(cells, schedule, options.annotation_limit)
    grid = Grid.for_extent(layer_extent(job, spilled.high))
    occupancy = np.zeros(grid.size, np.int64)
    names = _names(job, spilled)
    diameter = diameter_voxels(job, style)
    sharded = spilled.count >= options.shard_min_annotations
    layout = [_Buckets(plan, spilled.batch, spilled.folder) for plan in plans]
    relation = _RelBuckets(spilled) if spilled.instances is not None else None
    with atomic_directory(job.output) as out:
        by_id_spec = ShardSpec.for_count(spilled.count, int(_last_index(spilled)))
        by_id = _Index(out / "by_id", by_id_spec if sharded else None)
        properties: list[dict[str, Any]] = []
        for (xyz, index, instance), (packed, rank) in zip(spilled.batches(), cells(), strict=True):
            colours = None if instance is None else instance_colours_rgb(instance)
            values = np.zeros(len(xyz), np.int64) if instance is None else names.values_of(instance)
            ann = encode.point_annotations(
                xyz, index, index, encode.Names(names.labels, values), diameter, colours, instance
            )
            properties = ann.properties
            stored = encode.by_id_values(ann)
            by_id.add(ann.ids, stored.reshape(-1), np.full(len(ann), stored.shape[1]), None)
            level, at = emission_levels(packed, rank, plans, bits)
            rows = _rows(ann, rank)
            for number, buckets in enumerate(layout):
                mine = level == number
                if mine.any():
                    buckets.append(rows[mine], at[mine])
            if relation is not None and instance is not None:
                relation.append(ann, instance)
            occupancy += Occupancy.of_points(grid, xyz * scale).values
        files = by_id.close() + 1
        info: dict[str, Any] = {
            "@type": "neuroglancer_annotations_v1",
            "dimensions": {axis: [scale, "m"] for axis in "xyz"},
            "lower_bound": bounds.lower.tolist(),
            "upper_bound": bounds.upper.tolist(),
            "annotation_type": "POINT",
            "properties": properties,
            "relationships": [],
            "by_id": {"key": "by_id", **by_id.entry()},
            "spatial": [],
        }
        for number, buckets in enumerate(layout):
            key = f"spatial{number}"
            entry, count = buckets.write(out / key, sharded)
            files += count
            plan = buckets.plan
            info["spatial"].append(
                {
                    "key": key,
                    "grid_shape": [int(g) for g in plan.grid],
                    "chunk_size": [float(c) for c in plan.chunk],
                    "limit": int(plan.take.max()),
                    **entry,
                }
            )
        if relation is not None:
            entry, count = relation.write(out / f"rel_{RELATIONSHIP}", sharded)
            files += count
            info["relationships"].append(
                {"id": RELATIONSHIP, "key": f"rel_{RELATIONSHIP}", **entry}
            )
        (out / "info").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    instances = None if spilled.instances is None else len(spilled.instances)
    summary = layer_summary(
        job,
        options,
        (spilled.count, spilled.low, spilled.high),
        Occupancy(grid, "count", occupancy),
        spilled.out_of_bounds,
        instances,
    )
    summary.extra.update(
        annotation_type="POINT", annotations=spilled.count, levels=len(plans), files=files
    )
    return summary


_CELL = np.dtype([("packed", "<i8"), ("rank", "<u4")])


def _write_cells(
    spilled: Spilled, path: Path, bounds: Bounds, chunk: np.ndarray, grid: np.ndarray
) -> None:
    """Finest cell and priority rank of every point, in file order (12 bytes a point)."""
    seed = int.from_bytes(spilled.digest.digest(), "little")
    order = np.random.default_rng(seed).permutation(spilled.count)  # as writer.priority_order
    rank = np.empty(spilled.count, np.uint32)
    rank[order] = np.arange(spilled.count, dtype=np.uint32)
    del order
    start = 0
    with open(path, "wb") as handle:
        for xyz, _, _ in spilled.batches():
            rows = np.empty(len(xyz), _CELL)
            rows["packed"] = pack(_cell_of(_stored(xyz), bounds, chunk, grid))
            rows["rank"] = rank[start : start + len(xyz)]
            rows.tofile(handle)
            start += len(xyz)


def _stored(xyz: np.ndarray) -> np.ndarray:
    """Positions as the layer stores them (float32), as float64: what the index uses."""
    return xyz.astype(np.float32).astype(np.float64)


def _last_index(spilled: Spilled) -> int:
    """The largest record number (the last one kept: record numbers ascend)."""
    last = 0
    for _, index, _ in spilled.batches():
        if len(index):
            last = int(index[-1])
    return last


@dataclass(frozen=True)
class _Names:
    labels: list[str]
    ids: np.ndarray | None  # instance ids named, ascending; None: every point the object

    def values_of(self, instance: np.ndarray) -> np.ndarray:
        if self.ids is None:
            return np.zeros(len(instance), np.int64)
        return np.searchsorted(self.ids, instance).astype(np.int64)


def _names(job: AnnotationJob, spilled: Spilled) -> _Names:
    """The ``name`` enum of encode.names_for, from the whole file's instance ids."""
    ids = spilled.instances
    if ids is None or len(ids) == 0 or len(ids) > encode.MAX_NAMED_INSTANCES:
        return _Names([job.object_name], None)
    return _Names([f"{job.object_name} {i}" for i in ids.tolist()], ids)


def _rows(ann: encode.Annotations, rank: np.ndarray) -> np.ndarray:
    width = ann.records.shape[1]
    rows = np.empty(len(ann), _row_dtype(width))
    rows["rank"] = rank
    rows["id"] = ann.ids
    rows["record"] = ann.records
    return rows


def _row_dtype(width: int) -> np.dtype:
    return np.dtype([("rank", "<u4"), ("id", "<u8"), ("record", "u1", (width,))])


class _Index:
    """One uint64-keyed index written as it comes: sharded, or one file per key."""

    def __init__(self, directory: Path, spec: ShardSpec | None) -> None:
        self.directory = directory
        self.spec = spec
        self.writer = ShardWriter(directory, spec) if spec is not None else None
        self.files = 0
        directory.mkdir(parents=True, exist_ok=True)

    def add(
        self, keys: np.ndarray, data: np.ndarray, sizes: np.ndarray, names: list[str] | None
    ) -> None:
        if self.writer is not None:
            self.writer.add(keys, data, sizes)
        else:
            names = names if names is not None else [str(k) for k in keys.tolist()]
            self.files += write_unsharded(self.directory, names, data, sizes)

    def close(self) -> int:
        if self.writer is not None:
            self.writer.close()
            return self.writer.files
        return self.files

    def entry(self) -> dict[str, Any]:
        return {} if self.spec is None else {"sharding": self.spec.to_json()}


class _BucketFiles:
    """Rows appended to one file per bucket, read back bucket by bucket (in order)."""

    def __init__(self, spill: Path, prefix: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=prefix, dir=spill))
        self.handles: dict[int, IO[bytes]] = {}
        self.dtype: np.dtype | None = None

    def put(self, rows: np.ndarray, buckets: np.ndarray) -> None:
        self.dtype = rows.dtype
        for bucket in np.unique(buckets).tolist():
            handle = self.handles.get(bucket)
            if handle is None:
                handle = self.handles[bucket] = open(self.folder / str(bucket), "wb")  # noqa: SIM115
            rows[buckets == bucket].tofile(handle)

    def each(self) -> Iterator[np.ndarray]:
        """Each bucket's rows, in bucket order; the files are removed as they are read."""
        for handle in self.handles.values():
            handle.close()
        for bucket in sorted(self.handles):
            path = self.folder / str(bucket)
            rows = np.fromfile(path, self.dtype)
            path.unlink()
            yield rows
        self.folder.rmdir()


class _Buckets(_BucketFiles):
    """One level's points, appended to files by runs of cells in key order."""

    def __init__(self, plan: LevelPlan, size: int, spill: Path) -> None:
        super().__init__(spill, "level-")
        self.plan = plan
        keys = plan.keys()
        self.by_key = np.argsort(keys, kind="stable")
        self.keys = keys[self.by_key]
        take = plan.take[self.by_key]
        # Bucket of each cell (in key order): a new one whenever the running count passes
        # another ``size``, so a bucket holds at most ``size`` points (or one larger cell).
        self.bucket_of_sorted = (np.cumsum(take) - take) // max(1, size)
        rank_in_keys = np.empty(len(keys), np.int64)
        rank_in_keys[self.by_key] = np.arange(len(keys))
        self.rank_in_keys = rank_in_keys  # cell index (linear order) -> key order

    def append(self, rows: np.ndarray, cell_index: np.ndarray) -> None:
        order = self.rank_in_keys[cell_index]
        keyed = np.empty(len(rows), [("key", "<u8"), ("row", rows.dtype)])
        keyed["key"] = self.keys[order]
        keyed["row"] = rows
        self.put(keyed, self.bucket_of_sorted[order])

    def write(self, directory: Path, sharded: bool) -> tuple[dict[str, Any], int]:
        spec = ShardSpec.for_keys(self.keys) if sharded else None
        index = _Index(directory, spec)
        cells = self.plan.coordinates()[self.by_key]
        for keyed in self.each():
            order = np.lexsort((keyed["row"]["rank"], keyed["key"]))
            keyed = keyed[order]
            keys, counts = np.unique(keyed["key"], return_counts=True)
            records = np.ascontiguousarray(keyed["row"]["record"])
            ids = np.ascontiguousarray(keyed["row"]["id"])
            data, sizes = encode.encode_lists(records, ids, np.arange(len(keyed)), counts)
            names = None
            if spec is None:
                at = np.searchsorted(self.keys, keys)
                names = ["_".join(map(str, cell)) for cell in cells[at].tolist()]
            index.add(keys, data, sizes, names)
        return index.entry(), index.close()


class _RelBuckets(_BucketFiles):
    """Instance points appended to files by runs of instance ids; file order kept inside."""

    def __init__(self, spilled: Spilled) -> None:
        super().__init__(spilled.folder, "rel-")
        assert spilled.instances is not None and spilled.instance_counts is not None
        self.ids = spilled.instances
        counts = spilled.instance_counts
        self.bucket_of = (np.cumsum(counts) - counts) // spilled.batch

    def append(self, ann: encode.Annotations, instance: np.ndarray) -> None:
        width = ann.records.shape[1]
        rows = np.empty(len(ann), [("segment", "<u8"), ("row", _row_dtype(width))])
        rows["segment"] = instance
        rows["row"]["id"] = ann.ids
        rows["row"]["record"] = ann.records
        self.put(rows, self.bucket_of[np.searchsorted(self.ids, instance)])

    def write(self, directory: Path, sharded: bool) -> tuple[dict[str, Any], int]:
        spec = ShardSpec.for_keys(self.ids) if sharded else None
        index = _Index(directory, spec)
        for rows in self.each():
            order = np.argsort(rows["segment"], kind="stable")
            keys, counts = np.unique(rows["segment"][order], return_counts=True)
            records = np.ascontiguousarray(rows["row"]["record"])
            ids = np.ascontiguousarray(rows["row"]["id"])
            data, sizes = encode.encode_lists(records, ids, order, counts)
            index.add(keys, data, sizes, None)
        return index.entry(), index.close()
