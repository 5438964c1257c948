"""How much of a slice a point layer's markers would cover: the clutter rule's measure.

The viewer draws every pick as a sphere of the particle's physical size, cut by the slice
(a marker shows in exactly the slices its particle occupies, at the size of its section;
``ngstate/shaders.py`` on the viewer's branch, issue 14). For spheres, the share of a
plane they cut equals the share of the volume they fill (Delesse's principle), whatever
the plane's orientation. With markers placed at random at number density ``rho`` and
marker volume ``v = pi d^3 / 6``, the share of a slice under at least one marker is
``1 - exp(-rho v)`` (the Boolean model; overlapping markers are counted once).

Density is taken from the summary's occupancy grid, locally: cells are pooled into blocks
at least one marker across (a marker larger than a cell spills into its neighbours), and
each block's covered share is computed from its own density. The figure is that of the
**most crowded slice**: per axis, the blocks of one slab averaged by volume, the largest
over slabs and the three axes. Averaging over the whole tomogram instead would dilute a
crowd that fills the cell by the empty margin of the field of view (sample run TS_100 at
test size: the picks fill the cell, 30% of the volume, completely: a tomogram average of
28%, the densest slice 63%); the densest slice is also what someone scrolling meets.
Without a summary, the metadata's ``object_count`` is spread evenly over the tomogram (a
lower bound for clustered picks).

Figures measured on the sample tree: README.md, "Default-visible layers";
tests/test_ngstate_curation.py checks the rule at both sample sizes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from cryoet_ng.catalogue import Annotation
from cryoet_ng.summaries import Occupancy, Summary

ANGSTROM = 1e-10


def marker_diameter(annotation: Annotation, fallback_nm: float) -> tuple[float, str]:
    """(diameter in Å, where it came from) of the markers drawn for ``annotation``.

    The one place that decides the marker size for the clutter rule. Today: the metadata's
    ``annotation_object.diameter`` (Å), else ``fallback_nm``. The viewer's rule
    (``cryoet_ng.particles.particle_diameter``: metadata, else a table by ontology id, else
    ``layers.default_diameter_nm``) replaces this body when that work is merged.
    """
    value = (annotation.metadata.get("annotation_object") or {}).get("diameter")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value), "metadata"
    return fallback_nm * 10.0, "fallback"


@dataclass(frozen=True)
class Clutter:
    """The covered share of a slice, and what it was computed from."""

    share: float  # 0..1
    count: int
    diameter_angstrom: float
    diameter_origin: str  # metadata, table, fallback
    basis: str  # how the density was known

    def describe(self) -> str:
        return (
            f"its {self.count:,} markers ({self.diameter_angstrom / 10:g} nm, "
            f"{self.diameter_origin} diameter) would cover up to {self.share:.0%} of a slice "
            f"({self.basis})"
        )


def _cell_volumes(
    shape: tuple[int, int, int],
    origin: tuple[float, float, float],
    cell: float,
    extent: tuple[float, float, float] | None,
) -> np.ndarray:
    """(nz, ny, nx) volume of each cell inside [0, extent) (whole cells without an extent)."""
    widths = []
    for axis, n in enumerate(shape):
        lo = origin[axis] + cell * np.arange(n)
        hi = lo + cell
        if extent is not None:
            hi = np.minimum(hi, extent[axis])
            lo = np.maximum(lo, 0.0)
        widths.append(np.clip(hi - lo, 0.0, cell))
    wx, wy, wz = widths
    return wz[:, None, None] * wy[None, :, None] * wx[None, None, :]


def _pool(values: np.ndarray, k: int) -> np.ndarray:
    """Sum of ``values`` (z, y, x) over blocks of k x k x k cells (edges padded with 0)."""
    if k <= 1:
        return values
    padded = np.pad(values, [(0, (-n) % k) for n in values.shape])
    z, y, x = (n // k for n in padded.shape)
    return padded.reshape(z, k, y, k, x, k).sum(axis=(1, 3, 5))


def _inverse(values: np.ndarray) -> np.ndarray:
    return np.divide(1.0, values, out=np.zeros_like(values), where=values > 0)


@functools.lru_cache(maxsize=64)
def _blocks(
    shape: tuple[int, int, int],
    origin: tuple[float, float, float],
    cell: float,
    extent: tuple[float, float, float] | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Block volumes, their inverses and each axis' inverse slab volumes: the same for every
    layer of a tomogram (one grid), so computed once (a state has one per pick layer)."""
    volumes = _pool(_cell_volumes(shape, origin, cell, extent), k)
    slabs = tuple(
        _inverse(volumes.sum(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)
    )
    for array in (volumes, *slabs):
        array.setflags(write=False)
    inverse = _inverse(volumes)
    inverse.setflags(write=False)
    return volumes, inverse, slabs


def covered_share(
    occupancy: Occupancy,
    diameter_m: float,
    extent_m: tuple[float, float, float] | None = None,
) -> float:
    """Share of the most crowded slice under markers, from a ``count`` occupancy grid."""
    grid = occupancy.grid
    nx, ny, nz = grid.shape
    k = max(1, math.ceil(diameter_m / grid.cell_size - 1e-9))
    volumes, inverse, slabs = _blocks(grid.shape, grid.origin, grid.cell_size, extent_m, k)
    counts = _pool(occupancy.weights().reshape(nz, ny, nx), k)
    marker = math.pi * diameter_m**3 / 6.0
    covered = -np.expm1(counts * inverse * -marker) * volumes  # 1 - exp(-rho v), by volume
    sums = (covered.sum(axis=(1, 2)), covered.sum(axis=(0, 2)), covered.sum(axis=(0, 1)))
    return max(
        float((total * inv).max(initial=0.0)) for total, inv in zip(sums, slabs, strict=True)
    )


def assess(
    annotation: Annotation,
    summary: Summary | None,
    extent_m: tuple[float, float, float] | None,
    fallback_nm: float,
) -> Clutter | None:
    """The clutter of one point layer; None when neither a count nor a volume is known."""
    diameter, origin = marker_diameter(annotation, fallback_nm)
    diameter_m = diameter * ANGSTROM
    occ = summary.occupancy if summary is not None else None
    if summary is not None and occ is not None and occ.measure == "count":
        share = covered_share(occ, diameter_m, extent_m)
        return Clutter(share, summary.count, diameter, origin, "from the occupancy summary")
    count = annotation.metadata.get("object_count")
    if summary is not None:
        count = summary.count
    if not isinstance(count, int) or isinstance(count, bool) or extent_m is None:
        return None
    volume = float(np.prod(extent_m))
    if count <= 0 or volume <= 0:
        return Clutter(0.0, max(count, 0), diameter, origin, "no picks")
    share = 1.0 - math.exp(-count * math.pi * diameter_m**3 / 6.0 / volume)
    return Clutter(share, count, diameter, origin, "object_count spread over the tomogram")
