"""Which mask meshes enclose other layers in 3-D, from the summaries' occupancy grids.

A cell membrane is a thin shell: hardly any of a ribosome layer's picks lie *in* its voxels,
so the occlusion rule of ``occlusion.py`` (content inside the mask) keeps both visible, and
rightly so in a cross-section. In the 3-D panel, though, the shell's mesh is a closed
surface around the picks and hides them all. Here a mask's *filled outline* is its grid
cells plus every empty cell that cannot reach the grid's side faces through empty cells
(6-connected flood fill, the dual of the 26-connected shell of occupied cells). The flood
starts from the x and y faces only: a tomogram is a slab, thin in z, and a cell membrane
cut by the slab's top and bottom still walls its interior in the oblique 3-D view (the demo
membrane, 16 x 16 x 5 cells, fills to 611 cells from the side faces and to nothing more than
its own 389 from all six).

A mask whose filled outline holds at least ``threshold`` of another shown layer's content
gets a reduced mesh alpha (``objectAlpha``), so what it encloses stays visible in 3-D. The
share is :func:`ngstate.occlusion.share_matrix` applied to the filled grids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cryoet_ng.summaries import Occupancy
from ngstate.occlusion import share_matrix


def filled(occupancy: Occupancy) -> Occupancy:
    """The occupancy's filled outline: 1 in occupied and enclosed cells, 0 elsewhere."""
    nx, ny, nz = occupancy.grid.shape
    occupied = (occupancy.weights() > 0).reshape(nz, ny, nx)
    empty = ~occupied
    reach = np.zeros_like(occupied)
    reach[:, :, [0, -1]] = True
    reach[:, [0, -1], :] = True
    reach &= empty
    while True:
        grown = reach.copy()
        for axis in range(3):
            grown |= np.roll(reach, 1, axis) & _not_wrapped(reach.shape, axis, first=True)
            grown |= np.roll(reach, -1, axis) & _not_wrapped(reach.shape, axis, first=False)
        grown &= empty
        if np.array_equal(grown, reach):
            break
        reach = grown
    values = (~reach).astype(np.float64).ravel()
    return Occupancy(occupancy.grid, "fraction", values)


def _not_wrapped(shape: tuple[int, ...], axis: int, first: bool) -> np.ndarray:
    """False on the slice that ``np.roll`` wrapped around (so the flood does not)."""
    keep = np.ones(shape, dtype=bool)
    index: list[slice | int] = [slice(None)] * len(shape)
    index[axis] = 0 if first else -1
    keep[tuple(index)] = False
    return keep


def enclosing(
    occupancies: Sequence[Occupancy | None],
    is_mask: Sequence[bool],
    shown: Sequence[bool],
    threshold: float,
) -> list[bool]:
    """For each layer: is it a mask whose filled outline holds >= ``threshold`` of a shown
    layer's content (any layer but itself)?"""
    outlines = [
        filled(occ) if mask and occ is not None and occ.measure == "fraction" else occ
        for occ, mask in zip(occupancies, is_mask, strict=True)
    ]
    share = share_matrix(outlines, is_mask)
    visible = np.asarray(shown, dtype=bool)
    return [bool(np.any(row[visible] >= threshold)) for row in share]
