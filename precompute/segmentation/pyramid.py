"""The multiscale volume written brick by brick: memory bounded by the brick, not the mask.

A pass reads its base level in cubic bricks of ``BRICK`` voxels (x fastest), writes the brick
(pass 0 only: later bases are already written) and its mode downsamplings to the next
``LEVELS_PER_PASS`` levels, each a whole number of chunks, through tensorstore. When the
pyramid goes deeper, the next pass reads the last level it wrote back from the store (1/64 of
the voxels of its base) and goes on from there. Bricks start at multiples of ``BRICK`` and a
partial block only ever sits at the volume's far faces, so every level is the same as the
2x2x2 mode of the whole previous level (tests compare with a whole-volume reference).

Memory: a brick of source labels (16.8 M voxels: 64 MiB as uint32), its downsamplings, the
next brick being read and at most ``IN_FLIGHT`` bricks being encoded by tensorstore: about
0.5 GB at uint32, whatever the size of the mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorstore as ts

from precompute.segmentation.volume import CHUNK, Scale, downsample_mode, open_scale

BRICK = 256  # level voxels per brick edge: 4 chunks, and the portal's zarr chunk edge
IN_FLIGHT = 2  # bricks whose writes may still be pending

Box = tuple[slice, slice, slice]  # z, y, x
Reader = Callable[[Box], np.ndarray]
Visitor = Callable[[np.ndarray, tuple[int, int, int]], object]


def bricks(shape_zyx: tuple[int, ...], brick: int = BRICK) -> Iterator[Box]:
    """Boxes of ``brick``^3 voxels covering ``shape_zyx``, x fastest (clipped at the end)."""
    nz, ny, nx = shape_zyx
    for z in range(0, nz, brick):
        for y in range(0, ny, brick):
            for x in range(0, nx, brick):
                yield (
                    slice(z, min(z + brick, nz)),
                    slice(y, min(y + brick, ny)),
                    slice(x, min(x + brick, nx)),
                )


def write_pyramid(
    root: Path,
    scales: list[Scale],
    read: Reader,
    visit: Visitor | None = None,
    brick: int = BRICK,
) -> None:
    """Write every scale of the volume at ``root``; ``read(box)`` gives level-0 labels (z, y,
    x) and ``visit(labels, origin_zyx)`` is called once per level-0 brick (on another thread,
    overlapping the downsampling). ``brick`` is rounded down to a multiple of 2 chunks."""
    brick = max(2 * CHUNK, brick // (2 * CHUNK) * (2 * CHUNK))
    # Levels a brick makes on its own: each must stay a whole number of chunks.
    levels_per_pass = (brick & -brick).bit_length() - CHUNK.bit_length()
    stores = [open_scale(root, i, write=True) for i in range(len(scales))]
    base = 0
    while True:
        top = min(base + levels_per_pass, len(scales) - 1)
        source = read if base == 0 else _store_reader(open_scale(root, base, write=False))
        _pass(stores, scales, base, top, source, visit if base == 0 else None, brick)
        if top == len(scales) - 1:
            return
        base = top


def _store_reader(store: ts.TensorStore) -> Reader:
    return lambda box: store[box].read().result()


def _pass(
    stores: list[ts.TensorStore],
    scales: list[Scale],
    base: int,
    top: int,
    read: Reader,
    visit: Visitor | None,
    brick: int,
) -> None:
    size = scales[base].size
    boxes = list(bricks((size[2], size[1], size[0]), brick))
    pending: list[list[ts.WriteFutures]] = []
    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as visitor:
        ahead: Future[np.ndarray] = reader.submit(read, boxes[0])
        visits: list[Future[object]] = []
        for i, box in enumerate(boxes):
            data = ahead.result()
            if i + 1 < len(boxes):
                ahead = reader.submit(read, boxes[i + 1])
            origin = (box[0].start, box[1].start, box[2].start)
            if visit is not None:
                visits.append(visitor.submit(visit, data, origin))
            writes = []
            if base == 0:
                writes.append(_write(stores[0], data, origin))
            for level in range(base + 1, top + 1):
                step = _step(scales[level - 1], scales[level])
                binary = data.dtype == np.uint8 and int(data.max(initial=0)) <= 1
                data = downsample_mode(data, step, binary)
                relative = _step(scales[base], scales[level])
                at = (origin[0] // relative[0], origin[1] // relative[1], origin[2] // relative[2])
                writes.append(_write(stores[level], data, at))
            pending.append(writes)
            while len(pending) > IN_FLIGHT:
                for future in pending.pop(0):
                    future.result()
            while len(visits) > IN_FLIGHT:
                visits.pop(0).result()
        for done in visits:
            done.result()
    for writes in pending:
        for future in writes:
            future.result()


def _write(
    store: ts.TensorStore, data: np.ndarray, origin: tuple[int, int, int]
) -> ts.WriteFutures:
    z, y, x = origin
    nz, ny, nx = data.shape
    # Wrapped, not converted: tensorstore widens to uint32 while copying into its chunks, on
    # its own threads (converting up front cost ~13% of the CPU of the instance case).
    return store[z : z + nz, y : y + ny, x : x + nx].write(ts.array(data))


def _step(finer: Scale, coarser: Scale) -> tuple[int, int, int]:
    """Downsampling factor (z, y, x) from ``finer`` to ``coarser``."""
    x, y, z = (c // f for f, c in zip(finer.factor, coarser.factor, strict=True))
    return z, y, x
