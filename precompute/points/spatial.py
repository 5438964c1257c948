"""The multi-level spatial index of annotations.md, computed with whole-array numpy operations.

Level 0 is one cell over ``[lower_bound, upper_bound]``; each finer level halves the chunk
size along the axes that keep cells most isotropic. Following the spec's algorithm, every
level takes from each cell a uniformly random subset of the annotations remaining there, with
the same fraction ``min(1, limit / maxCount(level))`` in every cell (so density is spatially
uniform), rounded up per cell and never more than ``limit``. The rest (re-assigned to every
child cell their bounding box intersects) go to the next level, until nothing remains.

"Random" is one permutation of the annotations drawn from a seed the caller derives from the
input, so output is deterministic. The permutation is applied once; afterwards only stable
sorts by cell are used, so inside every cell annotations stay in that random order and the
first ``k`` of a cell are a uniform random sample of it (rank within group < k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_GRID = 1 << 20  # cells per axis: 3 x 20 bits keep compressed Morton codes within uint64
MAX_LEVELS = 24  # the last level takes whatever remains (only reachable with massive duplicates)
# Cells are not split below one voxel: finer cells separate nothing worth the viewer's requests,
# and near-duplicates then drain level by level on a fixed grid instead of deepening it.
MIN_CHUNK = 1.0


@dataclass(frozen=True)
class Level:
    """One spatial index level: non-empty cells in Morton order and their annotations."""

    grid_shape: tuple[int, int, int]
    chunk_size: tuple[float, float, float]
    limit: int  # most annotations in one cell of this level
    keys: np.ndarray  # (g,) uint64 compressed Morton codes, ascending
    cells: np.ndarray  # (g, 3) int64 cell coordinates
    counts: np.ndarray  # (g,) annotations per cell
    members: np.ndarray  # annotation indices, cell after cell (key order), random within a cell


@dataclass(frozen=True)
class Bounds:
    """The layer's box: ``lower`` inclusive, ``upper`` exclusive (annotations.md)."""

    lower: np.ndarray  # (3,) float64
    upper: np.ndarray  # (3,)

    @classmethod
    def enclosing(cls, lower: np.ndarray, upper: np.ndarray) -> Bounds:
        """The tightest box with every ``lower <= x <= upper`` strictly below its upper bound.

        The upper bound is the data maximum plus one ulp, nudged until ``max - lower`` is
        below ``upper - lower`` in floating point: then ``(x - lower) // chunk`` (the cell
        arithmetic of the viewer and the reader) never reaches the grid size.
        """
        low = lower.min(axis=0).astype(np.float64)
        top = upper.max(axis=0).astype(np.float64)
        high = np.nextafter(top, np.inf)
        while np.any(high - low <= top - low):
            high = np.where(high - low <= top - low, np.nextafter(high, np.inf), high)
        return cls(low, high)

    @property
    def base_chunk(self) -> np.ndarray:
        """Level-0 chunk: the extent, or MIN_CHUNK along (nearly) flat axes."""
        extent = self.upper - self.lower
        return np.where(extent >= MIN_CHUNK, extent, MIN_CHUNK)


def build_levels(
    lower: np.ndarray,
    upper: np.ndarray,
    bounds: Bounds,
    order: np.ndarray,
    limit: int,
) -> list[Level]:
    """Spatial index levels of annotations with bounding boxes ``lower``/``upper`` (m, 3).

    ``order`` is the random priority order (a permutation of ``range(m)``).
    """
    limit = max(1, int(limit))
    if not len(order):  # an empty layer still has its (empty) level-0 cell
        return [_empty_level(bounds)]
    points = lower is upper or np.array_equal(lower, upper)
    grid = np.ones(3, np.int64)
    chunk = bounds.base_chunk
    members = order.astype(np.int64)
    cells = np.zeros((len(members), 3), np.int64)
    levels: list[Level] = []
    for number in range(MAX_LEVELS):
        if number and not len(members):
            break
        last = number == MAX_LEVELS - 1
        level, rest = _emit(grid, chunk, members, cells, limit, last)
        levels.append(level)
        members = members[rest]
        cells = cells[rest]
        split = _split_axes(grid, chunk)
        child_grid = grid * np.where(split, 2, 1)
        child_chunk = chunk / np.where(split, 2.0, 1.0)
        if points:
            cells = _cell_of(lower[members], bounds, child_chunk, child_grid)
        else:
            members, cells = _children(
                lower, upper, bounds, members, cells, split, child_chunk, child_grid
            )
        grid, chunk = child_grid, child_chunk
    return levels


def _empty_level(bounds: Bounds) -> Level:
    none = np.zeros(0, np.int64)
    chunk = tuple(float(c) for c in bounds.base_chunk)
    one = np.zeros(1, np.int64)
    return Level((1, 1, 1), chunk, 1, one.astype(np.uint64), np.zeros((1, 3), np.int64), one, none)  # type: ignore[arg-type]


def _emit(
    grid: np.ndarray,
    chunk: np.ndarray,
    members: np.ndarray,
    cells: np.ndarray,
    limit: int,
    last: bool,
) -> tuple[Level, np.ndarray]:
    """This level's cells and the (sorted-order) mask of the entries left for the next level."""
    linear = cells[:, 0] + grid[0] * (cells[:, 1] + grid[1] * cells[:, 2])
    # Stable sort keeps the random order inside each cell; 16-bit keys use numpy's radix sort.
    key = linear.astype(np.uint16) if int(grid.prod()) <= 1 << 16 else linear
    sort = np.argsort(key, kind="stable")
    linear, members, cells = linear[sort], members[sort], cells[sort]
    n = len(members)
    new = np.ones(n, bool)
    new[1:] = linear[1:] != linear[:-1]
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))
    group = np.cumsum(new) - 1
    if n:
        most = int(counts.max())
        # k = ceil(count * limit / most), capped by the count: the same fraction in every cell.
        take = counts if last else np.minimum(counts, (counts * limit + most - 1) // most)
    else:
        take = counts
    rank = np.arange(n) - starts[group]
    emit = rank < take[group]
    group_cells = cells[starts]
    keys = morton_keys(group_cells, grid)
    by_key = np.argsort(keys, kind="stable")
    emitted_members = members[emit]
    # Reorder whole groups into key order (each group is contiguous in emitted_members).
    first = np.concatenate([[0], np.cumsum(take)[:-1]]).astype(np.int64)
    take_sorted = take[by_key]
    pick = np.repeat(first[by_key], take_sorted) + (
        np.arange(int(take.sum())) - np.repeat(np.cumsum(take_sorted) - take_sorted, take_sorted)
    )
    level = Level(
        grid_shape=tuple(int(g) for g in grid),  # type: ignore[arg-type]
        chunk_size=tuple(float(c) for c in chunk),  # type: ignore[arg-type]
        limit=int(take.max()) if n else 1,
        keys=keys[by_key],
        cells=group_cells[by_key],
        counts=take_sorted,
        members=emitted_members[pick],
    )
    rest = np.flatnonzero(~emit)
    # Entries left over, still in (cell, random) order; callers index members/cells with it,
    # so hand back positions in the caller's (unsorted) arrays.
    return level, sort[rest]


def _split_axes(grid: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """Halve the axes whose chunk is within a factor sqrt(2) of the longest splittable one.

    Axes whose half chunk would be below MIN_CHUNK (e.g. flat ones) stay whole.
    """
    can = (grid < MAX_GRID) & (chunk / 2 >= MIN_CHUNK)
    if not can.any():
        return can
    longest = chunk[can].max()
    return can & (chunk * math.sqrt(2) >= longest)


def _cell_of(xyz: np.ndarray, bounds: Bounds, chunk: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Cell of each position: floor((x - lower) / chunk), the upper bound in the last cell.

    Chunks are the extent divided by powers of two, so this matches the coarser levels' cells
    exactly (halving is exact in floating point) and the reader's cell arithmetic.
    """
    cell = np.floor((xyz - bounds.lower) / chunk).astype(np.int64)
    return np.clip(cell, 0, grid - 1)


def _children(
    lower: np.ndarray,
    upper: np.ndarray,
    bounds: Bounds,
    members: np.ndarray,
    parents: np.ndarray,
    split: np.ndarray,
    chunk: np.ndarray,
    grid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Every (annotation, child cell) pair whose child lies in the parent and meets the box."""
    factor = np.where(split, 2, 1)
    first = np.maximum(_cell_of(lower[members], bounds, chunk, grid), parents * factor)
    last = np.minimum(_cell_of(upper[members], bounds, chunk, grid), parents * factor + factor - 1)
    span = np.maximum(last - first + 1, 0)
    total = span.prod(axis=1)
    which = np.repeat(np.arange(len(members)), total)
    local = np.arange(int(total.sum())) - np.repeat(np.cumsum(total) - total, total)
    span_w = span[which]
    offset = np.stack(
        [
            local % span_w[:, 0],
            (local // span_w[:, 0]) % span_w[:, 1],
            local // (span_w[:, 0] * span_w[:, 1]),
        ],
        axis=1,
    )
    return members[which], first[which] + offset


def morton_keys(cells: np.ndarray, grid: np.ndarray | tuple[int, ...]) -> np.ndarray:
    """Compressed Morton codes (volume.md): interleave bits x, y, z, skipping exhausted axes."""
    grid = np.asarray(grid, np.int64)
    cells = cells.astype(np.uint64)
    key = np.zeros(len(cells), np.uint64)
    out_bit = 0
    bits = int(max(int(g - 1).bit_length() for g in grid))
    for bit in range(bits):
        for axis in range(3):
            if (int(grid[axis]) - 1) >> bit:
                key |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(out_bit)
                out_bit += 1
    return key
