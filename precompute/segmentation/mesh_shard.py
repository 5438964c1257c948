"""Fragments spilled to disk as they are meshed, then streamed into the mesh shard file.

Meshing returns node fragments in any order (parallel tasks); holding them, or every
label's finished mesh, in memory would make memory grow with the mask (one label of a
binary mask is the whole mesh). So fragments are appended to a temporary file with a small
index (label, lod, node, offset, size), and the shard is written label by label from it.

The shard file is ``neuroglancer_uint64_sharded_v1`` exactly as cloud-volume's
``synthesize_shards(blobs, data_offset=manifest sizes)`` builds it (same minishard order,
same gzip): each label's entry is its fragments followed by its manifest, and the index
points at the manifest only. Written here rather than by that function, which takes and
returns every byte of the shard in memory; tests compare the two byte for byte.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
from cloudvolume import compression
from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

from precompute.segmentation.mesh_blocks import NODE, Fragment

COPY_BUFFER = 1 << 20


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


def label_layout(rows: np.ndarray, num_lods: int) -> tuple[np.ndarray, bytes]:
    """(offset, size) of every fragment in manifest order (LOD 0 first, Morton order; size 0
    for the empty parents the format requires), and the binary manifest."""
    per_lod: list[np.ndarray] = []
    nodes: list[set[tuple[int, int, int]]] = []
    for lod in range(num_lods):
        present = rows[rows[:, 0] == lod]
        have = {tuple(p) for p in present[:, 1:4].tolist()}
        if lod:
            # Every node needs a parent, or Neuroglancer never reaches it: add empty ones.
            have |= {(x >> 1, y >> 1, z >> 1) for x, y, z in nodes[lod - 1]}
        nodes.append(have)
        per_lod.append(present)
    header = [
        np.array([NODE, NODE, NODE], "<f4").tobytes(),
        np.array([-0.5, -0.5, -0.5], "<f4").tobytes(),  # centre of padding voxel -1
        np.uint32(num_lods).astype("<u4").tobytes(),
        np.array([2.0**lod for lod in range(num_lods)], "<f4").tobytes(),
        # LOD l's voxel centres sit at (j + 0.5) * 2^l: shift its grid by 0.5 * (1 - 2^l).
        np.array([[0.5 * (1 - 2**lod)] * 3 for lod in range(num_lods)], "<f4").tobytes(),
        np.array([len(n) for n in nodes], "<u4").tobytes(),
    ]
    spans: list[np.ndarray] = []
    for lod in range(num_lods):
        positions = np.array(sorted(nodes[lod]), np.int64).reshape(-1, 3)
        positions = positions[np.argsort(morton(positions), kind="stable")]
        span = np.zeros((len(positions), 2), np.int64)
        present = per_lod[lod]
        if len(present):
            where = {tuple(p): i for i, p in enumerate(positions.tolist())}
            at = np.array([where[tuple(p)] for p in present[:, 1:4].tolist()])
            span[at] = present[:, 4:6]
        spans.append(span)
        header.append(np.ascontiguousarray(positions.T).astype("<u4").tobytes())
        header.append(span[:, 1].astype("<u4").tobytes())
    return np.concatenate(spans), b"".join(header)


def write_shard(
    out: Path, sharding: dict[str, Any], spill: FragmentSpill, labels: list[int], num_lods: int
) -> list[str]:
    """Write the shard file(s) of every label with fragments; return the file names."""
    spec = ShardingSpecification.from_dict(sharding)
    rows = spill.by_label()
    # shard -> minishard -> labels, in first-appearance order of ascending labels (as
    # cloud-volume's dicts): that fixes the order of the minishards in the file.
    groups: dict[str, dict[int, list[int]]] = {}
    for label in sorted(labels):
        if label not in rows:
            continue
        loc = spec.compute_shard_location(label)
        group = groups.setdefault(str(loc.shard_number), {})  # hex digits, as cloud-volume
        group.setdefault(int(loc.minishard_number), []).append(label)
    names = []
    for shard, minishards in sorted(groups.items()):
        name = f"{shard}.shard"
        _write_one(out / name, spec, minishards, rows, spill, num_lods)
        names.append(name)
    return names


def _write_one(
    path: Path,
    spec: ShardingSpecification,
    minishards: dict[int, list[int]],
    rows: dict[int, np.ndarray],
    spill: FragmentSpill,
    num_lods: int,
) -> None:
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
                spans, manifest = label_layout(rows[label], num_lods)
                data = int(spans[:, 1].sum())
                _copy_spans(spill, spans, handle)
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
    tmp.replace(path)


def _copy_spans(spill: FragmentSpill, spans: np.ndarray, handle: IO[bytes]) -> None:
    """Copy fragments (offset, size) from the spill file, in bounded reads."""
    for offset, size in spans.tolist():
        if size:
            spill.file.seek(offset)
            remaining = size
            while remaining:
                chunk = spill.file.read(min(remaining, COPY_BUFFER))
                handle.write(chunk)
                remaining -= len(chunk)


def morton(positions: np.ndarray) -> np.ndarray:
    """Z-curve code (x lowest bit) of (n, 3) non-negative grid positions."""
    code = np.zeros(len(positions), np.uint64)
    pos = positions.astype(np.uint64)
    for bit in range(21):
        for axis in range(3):
            code |= ((pos[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return code
