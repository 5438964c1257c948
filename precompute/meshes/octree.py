"""The octree of one mesh segment: node boxes, fragments per level, manifest, first view.

Stored-model space is voxels at the annotation's spacing (the portal's mesh units); the
mesh ``info`` transform scales it to nanometres. Level ``l`` has nodes of edge
``chunk * 2**l`` from ``origin``; its geometry is cut at cells of half that edge (whole
nodes at level 0), so every coarser fragment splits along its 2x2x2 children as the format
requires.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from precompute.meshes.cells import Cell
from precompute.multilod import DRACO_LEVEL, Frame, Piece, complete_octree, encode_pieces


@dataclass(frozen=True)
class Octree:
    origin: np.ndarray  # (3,) lower corner of node (0, 0, 0) at every level
    chunk: float  # level-0 node edge

    def node_size(self, level: int) -> float:
        return self.chunk * 2**level

    def cell_size(self, level: int) -> float:
        """Cells that geometry of ``level`` is cut into: the node, or its eighth."""
        return self.chunk if level == 0 else self.chunk * 2 ** (level - 1)

    def nodes(self, level: int, cells: dict[Cell, list[Piece]]) -> dict[Cell, list[Piece]]:
        """Pieces per cell -> pieces per node of ``level``."""
        if level == 0:
            return cells
        out: dict[Cell, list[Piece]] = {}
        for (x, y, z), pieces in cells.items():
            out.setdefault((x >> 1, y >> 1, z >> 1), []).extend(pieces)
        return out


@dataclass
class Segment:
    """Fragments of one segment, levels finest first (``blobs[l][node]``)."""

    octree: Octree
    blobs: list[dict[Cell, bytes]] = field(default_factory=list)
    triangles: list[int] = field(default_factory=list)

    def finish(self, scales: Iterable[float]) -> tuple[bytes, bytes, int]:
        """(fragment data, manifest, bytes of the coarsest level's fragments)."""
        positions = complete_octree([blobs.keys() for blobs in self.blobs])
        data: list[bytes] = []
        sizes = []
        for level, nodes in enumerate(positions):
            blobs = [self.blobs[level].get(node, b"") for node in map(tuple, nodes.tolist())]
            data.extend(blobs)
            sizes.append([len(b) for b in blobs])
        frame = Frame(
            chunk_shape=[self.octree.chunk] * 3,
            grid_origin=self.octree.origin.tolist(),
            lod_scales=list(scales),
            vertex_offsets=np.zeros((len(positions), 3)),
        )
        return b"".join(data), frame.manifest(positions, sizes), sum(sizes[-1])


def default_threads() -> int:
    """Encoding threads when the caller does not say: the cores, at most 2 (a batch runs
    one converter per core already)."""
    return min(2, os.cpu_count() or 1)


def build_segment(
    octree: Octree,
    levels: int,
    cells_of: Callable[[int], dict[Cell, list[Piece]] | None],
    threads: int,
    compression_level: int = DRACO_LEVEL,
) -> Segment:
    """Cut every level and Draco-encode its nodes on ``threads`` threads (Draco and numpy
    release the GIL). Making level l + 1 overlaps encoding level l; a level's pieces are
    freed as its nodes are encoded. ``cells_of`` returning None ends the levels early."""
    segment = Segment(octree)
    pending: list[dict[Cell, Future[bytes]]] = []
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for level in range(levels):
            cells = cells_of(level)
            if cells is None:
                break
            nodes = octree.nodes(level, cells)
            size = octree.node_size(level)
            jobs: dict[Cell, Future[bytes]] = {}
            count = 0
            for key in sorted(nodes):
                lower = octree.origin + np.asarray(key, np.float64) * size
                pieces = nodes.pop(key)
                count += sum(len(f) for _, f in pieces)
                jobs[key] = pool.submit(
                    encode_pieces, pieces, lower, size, compression_level, level > 0
                )
            pending.append(jobs)
            segment.triangles.append(count)
        for jobs in pending:
            segment.blobs.append({key: job.result() for key, job in jobs.items()})
    return segment
