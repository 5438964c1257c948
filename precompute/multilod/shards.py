"""Segments into ``neuroglancer_uint64_sharded_v1`` shard files, streamed.

Each segment's entry is its fragments followed by its manifest, and the index points at the
manifest only: exactly what cloud-volume's ``synthesize_shards(blobs, data_offset=manifest
sizes)`` builds (same minishard order, same gzip; tests compare the two byte for byte).
Written here rather than by that function because it takes and returns every byte of the
shard in memory, and a binary mask's one label is the whole mesh.

Fragments come either from memory (:func:`write_segments`) or from a :class:`FragmentSpill`,
a temporary file that parallel meshing appends to in any order (:meth:`FragmentSpill.write`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
from cloudvolume import compression
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

from cryoet_ng import atomic
from precompute.multilod.encoding import Frame, Position, complete_octree

COPY_BUFFER = 1 << 20
Fragment = tuple[int, int, Position, bytes]  # label, lod, node, Draco bytes
# Writes one segment's fragment data to the handle; returns (data bytes, manifest).
SegmentWriter = Callable[[int, IO[bytes]], tuple[int, bytes]]


def write_shards(
    folder: Path, sharding: dict[str, Any], labels: Iterable[int], segment: SegmentWriter
) -> dict[str, int]:
    """Write the shard file(s) of ``labels`` into ``folder``, each label's data from
    ``segment``; return {file name: bytes}. Each file goes to a ``.part`` sibling first."""
    spec = ShardingSpecification.from_dict(sharding)
    folder.mkdir(parents=True, exist_ok=True)
    # shard -> minishard -> labels, in first-appearance order of ascending labels (as
    # cloud-volume's dicts): that fixes the order of the minishards in the file.
    groups: dict[str, dict[int, list[int]]] = {}
    for label in sorted(labels):
        loc = spec.compute_shard_location(label)
        group = groups.setdefault(str(loc.shard_number), {})  # hex digits, as cloud-volume
        group.setdefault(int(loc.minishard_number), []).append(label)
    return {
        f"{shard}.shard": _write_one(folder / f"{shard}.shard", spec, minishards, segment)
        for shard, minishards in sorted(groups.items())
    }


def write_segments(
    folder: Path, info: dict[str, Any], segments: dict[int, tuple[bytes, bytes]]
) -> int:
    """Write ``info`` and the shards of in-memory ``segments`` (label -> (fragment data,
    manifest)); return the bytes written in shard files."""

    def segment(label: int, handle: IO[bytes]) -> tuple[int, bytes]:
        data, manifest = segments[label]
        handle.write(data)
        return len(data), manifest

    sizes = write_shards(folder, info["sharding"], segments, segment)
    atomic.write_json(folder / "info", info)
    return sum(sizes.values())


def _write_one(
    path: Path,
    spec: ShardingSpecification,
    minishards: dict[int, list[int]],
    segment: SegmentWriter,
) -> int:
    fixed = np.zeros((2**spec.minishard_bits, 2), np.uint64)
    index_parts: list[bytes] = []
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as handle:
        handle.write(fixed.tobytes())  # placeholder, rewritten at the end
        position = 0  # in the data section
        for labels in minishards.values():
            index = np.zeros((3, len(labels)), np.uint64)
            last_label = 0
            for i, label in enumerate(labels):
                data, manifest = segment(label, handle)
                handle.write(manifest)
                index[:, i] = (label - last_label, data, len(manifest))
                if i == 0:
                    index[1, 0] += position
                position += data + len(manifest)
                last_label = label
            index_parts.append(compression.compress(index.tobytes("C"), method="gzip"))
        end = position
        for minishard, part in zip(minishards, index_parts, strict=True):
            fixed[minishard] = (end, end + len(part))
            end += len(part)
        handle.writelines(index_parts)
        handle.seek(0)
        handle.write(fixed.tobytes())
    size = tmp.stat().st_size
    tmp.replace(path)
    return size


class FragmentSpill:
    """Append-only store of fragments: bytes in a temporary file, index in arrays."""

    def __init__(self, directory: Path) -> None:
        # Closed by close() (the caller's finally); unlinked from the start.
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
        self.rows: list[tuple[int, int, int, int, int, int, int]] = []
        self.size = 0

    def add(self, fragments: Iterable[Fragment]) -> None:
        for label, lod, (x, y, z), blob in fragments:
            self.file.write(blob)
            self.rows.append((label, lod, x, y, z, self.size, len(blob)))
            self.size += len(blob)

    def close(self) -> None:
        self.file.close()

    def by_label(self) -> dict[int, np.ndarray]:
        """Each label's rows (lod, x, y, z, offset, size), unsorted."""
        if not self.rows:
            return {}
        table = np.array(self.rows, np.int64)
        order = np.argsort(table[:, 0], kind="stable")
        table = table[order]
        labels, starts = np.unique(table[:, 0], return_index=True)
        ends = [*starts[1:], len(table)]
        return {
            int(label): table[a:b, 1:]
            for label, a, b in zip(labels.tolist(), starts.tolist(), ends, strict=True)
        }

    def write(self, folder: Path, sharding: dict[str, Any], frame: Frame) -> dict[str, int]:
        """Shard file(s) of every spilled label (levels: ``frame.lod_scales``)."""
        rows = self.by_label()
        num_lods = len(frame.lod_scales)

        def segment(label: int, handle: IO[bytes]) -> tuple[int, bytes]:
            spans, manifest = layout(rows[label], num_lods, frame)
            self._copy(spans, handle)
            return int(spans[:, 1].sum()), manifest

        return write_shards(folder, sharding, rows, segment)

    def _copy(self, spans: np.ndarray, handle: IO[bytes]) -> None:
        """Copy fragments (offset, size) from the spill file, in bounded reads."""
        for offset, size in spans.tolist():
            if size:
                self.file.seek(offset)
                remaining = size
                while remaining:
                    chunk = self.file.read(min(remaining, COPY_BUFFER))
                    handle.write(chunk)
                    remaining -= len(chunk)


def layout(rows: np.ndarray, num_lods: int, frame: Frame) -> tuple[np.ndarray, bytes]:
    """(offset, size) in the spill of every fragment of one label in manifest order (size 0
    for the empty parents the format requires), and the label's manifest."""
    levels = [rows[rows[:, 0] == lod] for lod in range(num_lods)]
    positions = complete_octree([map(tuple, level[:, 1:4].tolist()) for level in levels])
    spans: list[np.ndarray] = []
    for nodes, present in zip(positions, levels, strict=True):
        span = np.zeros((len(nodes), 2), np.int64)
        if len(present):
            where = {node: i for i, node in enumerate(map(tuple, nodes.tolist()))}
            at = np.array([where[node] for node in map(tuple, present[:, 1:4].tolist())])
            span[at] = present[:, 4:6]
        spans.append(span)
    manifest = frame.manifest(positions, [span[:, 1] for span in spans])
    return np.concatenate(spans), manifest
