"""The multi-level spatial index of precomputed annotations, with whole-array numpy operations.

Spec: Neuroglancer's ``src/datasource/precomputed/annotations.md`` (cited as annotations.md
below; Morton codes: ``volume.md`` beside it).

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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cryoet_ng.vectors import triple

MAX_GRID = 1 << 20  # cells per axis: 3 x 20 bits keep compressed Morton codes within uint64
MAX_LEVELS = 24  # the last level takes whatever remains (only reachable with massive duplicates)
# Cells are not split below one voxel: finer cells separate nothing worth the viewer's requests,
# and near-duplicates then drain level by level on a fixed grid instead of deepening it.
MIN_CHUNK = 1.0
_AXIS_MASK = (1 << 21) - 1  # packed finest-grid cells: 21 bits per axis


@dataclass(frozen=True)
class Level:
    """One spatial index level: non-empty cells in Morton order and their annotations."""

    grid_shape: tuple[int, int, int]
    chunk_size: tuple[float, float, float]
    limit: int  # most annotations in one cell of this level
    keys: np.ndarray  # (g,) uint64 compressed Morton codes, ascending
    cells: np.ndarray  # (g, 3) int64 cell coordinates
    counts: np.ndarray  # (g,) annotations per cell
    # Positions in the priority order (``order[members]`` are annotation indices), cell after
    # cell (key order), ascending (random) within a cell.
    members: np.ndarray


@dataclass(frozen=True)
class Bounds:
    """The layer's box: ``lower`` inclusive, ``upper`` exclusive (annotations.md)."""

    lower: np.ndarray  # (3,) float64
    upper: np.ndarray  # (3,)

    @classmethod
    def enclosing(cls, lower: np.ndarray, upper: np.ndarray) -> Bounds:
        """The tightest box with every ``lower <= x <= upper`` strictly below its upper bound.

        The upper bound is the data maximum plus about one ulp of the extent, so that
        ``max - lower < upper - lower`` in floating point: then ``(x - lower) // chunk`` (the
        cell arithmetic of the viewer and the reader) never reaches the grid size.
        """
        low, _ = column_range(lower)
        _, top = column_range(upper)
        span = top - low
        extent = np.nextafter(span, np.inf)
        high = low + extent
        for _ in range(64):  # rounding of low + extent: a step or two of one ulp of the extent
            short = high - low <= span
            if not short.any():
                break
            extent = np.where(short, np.nextafter(extent, np.inf), extent)
            high = low + extent
        return cls(low, high)

    @property
    def base_chunk(self) -> np.ndarray:
        """Level-0 chunk: the extent, or MIN_CHUNK along (nearly) flat axes."""
        extent = self.upper - self.lower
        return np.where(extent >= MIN_CHUNK, extent, MIN_CHUNK)


def column_range(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (min, max) of an (n, 3) array as float64 (NaN if a column has NaN).

    Column by column: ``xyz.min(axis=0)`` on a C-ordered (n, 3) array is ~5x slower.
    """
    low = np.array([xyz[:, axis].min() for axis in range(3)], np.float64)
    high = np.array([xyz[:, axis].max() for axis in range(3)], np.float64)
    return low, high


def build_levels(
    lower: np.ndarray,
    upper: np.ndarray,
    bounds: Bounds,
    order: np.ndarray,
    limit: int,
) -> list[Level]:
    """Spatial index levels of annotations with bounding boxes ``lower``/``upper`` (m, 3).

    ``order`` is the random priority order (a permutation of ``range(m)``); levels list
    their members as positions in it, so that callers who permute their annotations into
    priority order once then gather them almost sequentially. Points (``lower
    is upper``) sit in one cell per level: their cell ids come from integer coordinates on
    the finest grid, shifted per level. Boxes (lines) may meet several cells and are carried
    as (annotation, cell) pairs.
    """
    limit = max(1, int(limit))
    if not len(order):  # an empty layer still has its (empty) level-0 cell
        return [_empty_level(bounds)]
    schedule = _schedule(bounds)
    points = lower is upper
    index = np.int32 if len(order) < 1 << 31 else np.int64  # halves the gathers' traffic
    order = order.astype(index)
    members = np.arange(len(order), dtype=index)  # positions in priority order
    if points:
        # Finest-grid cell of each point, packed 21 bits per axis, in priority order: one
        # gather per level instead of three (entries stay ascending inside each cell, so the
        # gathers read memory almost sequentially).
        fine = _cell_of(lower, bounds, schedule[-1][1], schedule[-1][0])
        packed = (fine[:, 2] << 42 | fine[:, 1] << 21 | fine[:, 0])[order]
        bits = np.log2(schedule[-1][0]).astype(np.int64)
    else:
        lower, upper = lower[order], upper[order]
        cells = np.zeros((len(members), 3), np.int64)
    levels: list[Level] = []
    for number, (grid, chunk) in enumerate(schedule):
        if number and not len(members):
            break
        if points:
            at = packed[members]
            shift = (bits - np.log2(grid).astype(np.int64)).tolist()
            linear = (at >> (42 + shift[2])) * int(grid[1])
            linear += (at >> (21 + shift[1])) & (int(grid[1]) - 1)
            linear *= int(grid[0])
            linear += (at >> shift[0]) & (int(grid[0]) - 1)
            cells_at = _unpack(at, shift)
        else:
            linear = cells[:, 0] + grid[0] * (cells[:, 1] + grid[1] * cells[:, 2])
            cells_at = cells.__getitem__
        last = number == len(schedule) - 1
        level, rest = _emit(grid, chunk, members, linear, cells_at, limit, last)
        levels.append(level)
        members = members[rest]
        if not points and not last:
            child_grid, child_chunk = schedule[number + 1]
            members, cells = _children(
                (lower, upper), bounds, members, cells[rest], (child_grid, child_chunk), grid
            )
    return levels


def _schedule(bounds: Bounds) -> list[tuple[np.ndarray, np.ndarray]]:
    """(grid_shape, chunk_size) of every possible level; the data decide how many are used."""
    grid, chunk = np.ones(3, np.int64), bounds.base_chunk
    out = [(grid, chunk)]
    for _ in range(MAX_LEVELS - 1):
        split = _split_axes(grid, chunk)
        grid = grid * np.where(split, 2, 1)
        chunk = chunk / np.where(split, 2.0, 1.0)
        out.append((grid, chunk))
    return out


def _empty_level(bounds: Bounds) -> Level:
    none = np.zeros(0, np.int64)
    chunk = triple(float(c) for c in bounds.base_chunk)
    one = np.zeros(1, np.int64)
    cells = np.zeros((1, 3), np.int64)
    return Level((1, 1, 1), chunk, 1, one.astype(np.uint64), cells, one, none)


def _emit(
    grid: np.ndarray,
    chunk: np.ndarray,
    members: np.ndarray,
    linear: np.ndarray,
    cells_at: Callable[[np.ndarray], np.ndarray],
    limit: int,
    last: bool,
) -> tuple[Level, np.ndarray]:
    """This level and the positions of the entries left for the next level, in (cell,
    random) order; from each entry's annotation and linear cell id (x fastest), and
    ``cells_at(positions)``: the cells of the entries at those positions."""
    sort = stable_order(linear, int(grid.prod() - 1).bit_length())
    members = members[sort]
    n = len(members)
    sorted_linear = linear[sort]
    new = np.empty(n, bool)
    new[0] = True
    np.not_equal(sorted_linear[1:], sorted_linear[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))
    most = int(counts.max())
    # k = ceil(count * limit / most), capped by the count: the same fraction in every cell.
    take = counts if last else np.minimum(counts, (counts * limit + most - 1) // most)
    # Entry i of a cell starting at s is emitted when i - s < k, i.e. i < s + k.
    emit = np.arange(n) < np.repeat(starts + take, counts)
    group_cells = cells_at(sort[starts])
    keys = morton_keys(group_cells, grid)
    emitted = members[emit]
    if len(keys) > 1 and not np.all(keys[1:] > keys[:-1]):
        # Reorder whole groups into key order (each group is contiguous in ``emitted``).
        by_key = np.argsort(keys, kind="stable")
        first = np.cumsum(take) - take
        take, keys, group_cells = take[by_key], keys[by_key], group_cells[by_key]
        pick = np.repeat(first[by_key] - (np.cumsum(take) - take), take)
        pick += np.arange(len(pick))
        emitted = emitted[pick]
    level = Level(
        grid_shape=triple(int(g) for g in grid),
        chunk_size=triple(float(c) for c in chunk),
        limit=int(take.max()),
        keys=keys,
        cells=group_cells,
        counts=take,
        members=emitted,
    )
    return level, sort[~emit]


def _unpack(packed: np.ndarray, shift: list[int]) -> Callable[[np.ndarray], np.ndarray]:
    """``cells_at`` for points: (g, 3) cells of the packed finest cells at some positions."""

    def cells_at(positions: np.ndarray) -> np.ndarray:
        at = packed[positions]
        return np.stack([(at >> (21 * a)) & _AXIS_MASK for a in range(3)], axis=1) >> shift

    return cells_at


def stable_order(key: np.ndarray, bits: int) -> np.ndarray:
    """Stable argsort of non-negative integer keys below ``2**bits``.

    LSD radix sort over 16-bit digits, each digit sorted by numpy's radix sort for 16-bit
    keys: measured 6 ms per digit for 1M keys, against 91 ms for ``argsort(kind="stable")``
    of uint32/uint64 keys (timsort) on this machine.
    """
    order: np.ndarray | None = None
    for shift in range(0, max(bits, 1), 16):
        digit = (key >> shift).astype(np.uint16)  # the cast keeps the low 16 bits
        if order is None:
            order = np.argsort(digit, kind="stable")
        else:
            order = order[np.argsort(digit[order], kind="stable")]
    assert order is not None
    return order


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
    boxes: tuple[np.ndarray, np.ndarray],
    bounds: Bounds,
    members: np.ndarray,
    parents: np.ndarray,
    child: tuple[np.ndarray, np.ndarray],
    grid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Every (annotation, child cell) pair whose child lies in the parent and meets the box."""
    lower, upper = boxes
    child_grid, chunk = child
    factor = child_grid // grid  # 2 along the axes split at this level, else 1
    first = np.maximum(_cell_of(lower[members], bounds, chunk, child_grid), parents * factor)
    last = np.minimum(
        _cell_of(upper[members], bounds, chunk, child_grid), parents * factor + factor - 1
    )
    span = np.maximum(last - first + 1, 0)
    total = span[:, 0] * span[:, 1] * span[:, 2]
    if np.all(total == 1):  # the common case: each box within one child cell
        return members, first
    which = np.repeat(np.arange(len(members)), total)  # keeps the (cell, random) order
    cells = first[which]
    rows = np.flatnonzero(total[which] > 1)
    owner = which[rows]
    local = rows - (np.cumsum(total) - total)[owner]
    sx, sy = span[owner, 0], span[owner, 1]
    cells[rows] += np.stack([local % sx, (local // sx) % sy, local // (sx * sy)], axis=1)
    return members[which], cells


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
