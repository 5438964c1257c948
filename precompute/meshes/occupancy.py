"""How much of each summary-grid cell a mesh fills, so meshes take part in occlusion.

A closed, consistently wound mesh encloses a volume: per cell it is computed exactly from
the surface alone (divergence theorem per column of cells). With the mesh cut at the cell
planes, a cell's share of the interior is the sum over its triangles of the signed prism
down to the cell's floor, plus the cell's full height times the signed projected area of
every triangle above it in the same column (the interior reaching through its top). An
open mesh (a membrane sheet) encloses nothing; its cells get the volume of a one-voxel
thick shell along the surface, so a mask around it still finds it inside.
"""

from __future__ import annotations

import numpy as np

from cryoet_ng.summaries import Grid, Occupancy
from precompute.meshes.cells import cut_triangles, unpack_all
from precompute.meshes.glb import TriangleMesh


def is_closed(mesh: TriangleMesh) -> bool:
    """Every directed edge once, and its reverse once: closed, manifold, consistently wound."""
    n = len(mesh.vertices)
    f = mesh.faces
    a = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    b = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    forward = np.sort(a * n + b)
    if np.any(forward[1:] == forward[:-1]):
        return False
    reverse = np.sort(b * n + a)
    return bool(np.array_equal(forward, reverse))


def signed_volume(mesh: TriangleMesh) -> float:
    v = mesh.vertices[mesh.faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def area(mesh: TriangleMesh) -> float:
    v = mesh.vertices[mesh.faces]
    return float(np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1).sum() / 2)


def cell_volumes(grid: Grid, extent_m: tuple[float, float, float]) -> np.ndarray:
    """Volume (m^3) of each cell inside the tomogram, flat x-fastest."""
    sides = [
        np.clip(extent_m[a] - np.arange(grid.shape[a]) * grid.cell_size, 0, grid.cell_size)
        for a in range(3)
    ]
    return (sides[2][:, None, None] * sides[1][None, :, None] * sides[0][None, None, :]).ravel()


def mesh_occupancy(
    mesh: TriangleMesh,
    voxel_m: float,
    grid: Grid,
    extent_m: tuple[float, float, float],
    closed: bool | None = None,
) -> tuple[Occupancy, bool]:
    """Fraction of each cell enclosed by ``mesh`` (voxel units), and whether it is closed
    (``closed``: already known, e.g. of the mesh this one simplifies)."""
    closed = is_closed(mesh) if closed is None else closed
    cell = grid.cell_size / voxel_m  # grid cells in voxels; the grid's origin is 0
    low = np.floor(mesh.vertices.min(axis=0) / cell).astype(np.int64)
    high = np.floor(mesh.vertices.max(axis=0) / cell).astype(np.int64)
    sign = 1.0 if signed_volume(mesh) >= 0 else -1.0
    # Per cell of the mesh's own box (index - low): prism to the floor, signed projected
    # area, surface area; all in voxel units.
    ext = high - low + 1  # x, y, z
    corners, keys = cut_triangles(mesh.vertices, mesh.faces, low * cell, cell)
    x, y, z = unpack_all(keys)
    flat = (z * ext[1] + y) * ext[0] + x
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    az = normal[:, 2] / 2
    floor = (z + low[2]) * cell
    size = int(np.prod(ext))
    shape = tuple(ext[::-1])  # (z, y, x)

    def total(weights: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights, minlength=size).reshape(shape)

    prism = total(az * (corners[:, :, 2].mean(axis=1) - floor))
    projected = total(az)
    surface = total(np.linalg.norm(normal, axis=1) / 2)
    if closed:
        # Interior reaching through a cell's top: projected area of everything above it.
        above = np.cumsum(projected[::-1], axis=0)[::-1] - projected
        filled = sign * (prism + cell * above)
    else:
        filled = surface  # a one-voxel-thick shell along the sheet
    grid_filled = np.zeros(tuple(np.asarray(grid.shape)[::-1]))
    lo = np.maximum(low, 0)
    hi = np.minimum(high + 1, np.asarray(grid.shape))
    if np.all(hi > lo):
        src = tuple(slice(lo[a] - low[a], hi[a] - low[a]) for a in (2, 1, 0))
        dst = tuple(slice(lo[a], hi[a]) for a in (2, 1, 0))
        grid_filled[dst] = filled[src]
    volumes = cell_volumes(grid, extent_m) / voxel_m**3
    values = grid_filled.ravel()
    fraction = np.divide(values, volumes, out=np.zeros(grid.size), where=volumes > 0)
    return Occupancy(grid, "fraction", np.clip(fraction, 0.0, 1.0)), closed


def instance_occupancy(
    locations: np.ndarray,
    template: TriangleMesh,
    voxel_m: float,
    grid: Grid,
    extent_m: tuple[float, float, float],
) -> tuple[Occupancy, bool]:
    """Each pick's model volume (or one-voxel shell) in the cell of its location."""
    closed = is_closed(template)
    each = abs(signed_volume(template)) if closed else area(template)
    cells = grid.cell_of(locations * voxel_m)
    filled = np.bincount(cells, minlength=grid.size) * each
    volumes = cell_volumes(grid, extent_m) / voxel_m**3
    fraction = np.divide(filled, volumes, out=np.zeros(grid.size), where=volumes > 0)
    return Occupancy(grid, "fraction", np.clip(fraction, 0.0, 1.0)), closed
