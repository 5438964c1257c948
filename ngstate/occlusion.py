"""Which layer would hide which, from the summaries' coarse occupancy grids.

``share[i, j]`` is the share of layer *j*'s content that lies inside volume layer *i*:

* points (``count`` grids): ``sum(count_j * fraction_i) / sum(count_j)``;
* masks (``fraction`` grids): ``sum(min(fraction_j, fraction_i)) / sum(fraction_j)``, the
  largest overlap the two per-cell fractions allow, weighted by cell volume. The maximum
  (rather than the product, which assumes independence inside a cell) is what detects
  containment of thin structures: a nuclear-envelope mask at 0.1 of its cells lies wholly
  inside an all-membranes mask at 0.1 of the same cells, which the product would call 10%.

Grids of different spacings are compared by sampling *i*'s grid at the physical centres of
*j*'s cells (outside *i*'s grid counts as empty). Only volume-like layers (masks) occlude;
point layers hide nothing in a cross-section.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cryoet_ng.summaries import Grid, Occupancy


def _sample(source: Grid, values: np.ndarray, target: Grid) -> np.ndarray:
    """``values`` on ``source`` sampled at the cell centres of ``target`` (0 outside)."""
    if source == target:
        return values
    centres = target.centres()
    ijk = np.floor((centres - np.asarray(source.origin)) / source.cell_size).astype(np.int64)
    shape = np.asarray(source.shape)
    inside = np.all((ijk >= 0) & (ijk < shape), axis=1)
    nx, ny, _ = source.shape
    flat = ijk[:, 0] + nx * (ijk[:, 1] + ny * ijk[:, 2])
    out = np.zeros(target.size)
    out[inside] = values[flat[inside]]
    return out


def share_matrix(occupancies: Sequence[Occupancy | None], occluders: Sequence[bool]) -> np.ndarray:
    """(n, n) array: share of j inside i for occluder i; 0 where unknown or not applicable."""
    n = len(occupancies)
    share = np.zeros((n, n))
    known = {j: occ for j, occ in enumerate(occupancies) if occ is not None}
    sources = [i for i, occ in known.items() if occluders[i] and occ.measure == "fraction"]
    if not sources:
        return share
    # One matrix product per distinct target grid (usually a single one per tomogram).
    by_grid: dict[Grid, list[int]] = {}
    for j, occ in known.items():
        by_grid.setdefault(occ.grid, []).append(j)
    for grid, js in by_grid.items():
        content = np.stack([known[j].weights() for j in js])
        totals = content.sum(axis=1)
        totals[totals == 0] = np.inf  # empty layers have nothing to hide
        masks = np.stack(
            [
                np.clip(_sample(occ.grid, occ.weights(), grid), 0.0, 1.0)
                for occ in (known[i] for i in sources)
            ]
        )
        block = (masks @ content.T) / totals  # (sources, targets): points (count grids)
        fractions = [k for k, j in enumerate(js) if known[j].measure == "fraction"]
        if fractions:
            overlap = np.minimum(masks[:, None, :], content[None, fractions, :]).sum(axis=2)
            block[:, fractions] = overlap / totals[fractions]
        share[np.ix_(sources, js)] = block
    np.fill_diagonal(share, 0.0)
    return share
