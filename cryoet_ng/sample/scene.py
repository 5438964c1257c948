"""Geometry of one synthetic cell: where the membrane, vesicles, filament and particles are.

All positions are voxel coordinates at the tomogram's spacing in x, y, z order (the
annotation convention); arrays built from them are indexed z, y, x. Lengths are in
voxels at 13.48 Å: a ribosome (~25 nm) is ~19 voxels across, a lipid bilayer ~3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryoet_ng.sample.spec import SizeSpec

RIBOSOME_RADIUS = 8.0
ATP_HEAD_OFFSET = 5.0  # head centre lies this far inside the membrane, along -normal
MICROTUBULE_RADIUS = 7.5  # wall centre; 12.5 nm outer radius at 13.48 Å
MEMBRANE_HALF_WIDTH = 2.5  # half-thickness of the "membrane" mask


@dataclass(frozen=True)
class Scene:
    """Everything placed in one tomogram (float positions unless stated)."""

    shape_zyx: tuple[int, int, int]
    cell_centre: np.ndarray  # (3,) xyz
    cell_axes: np.ndarray  # (3,) semi-axes a, b, c (xyz)
    vesicle_centres: np.ndarray  # (n, 3) xyz, whole voxels
    vesicle_radii: np.ndarray  # (n,)
    microtubule: np.ndarray  # (2, 3) xyz end points of the filament axis
    ribosomes: np.ndarray  # (n, 3) xyz, whole voxels (rendered exactly there)
    ribosome_axes: np.ndarray  # (n, 3) unit vectors, large->small subunit
    atp_centres: np.ndarray  # (n, 3) xyz head centres
    atp_rotations: np.ndarray  # (n, 3, 3) columns = particle axes in tomogram xyz

    @property
    def size_xyz(self) -> tuple[int, int, int]:
        z, y, x = self.shape_zyx
        return x, y, z

    def cell_distance(self, points_xyz: np.ndarray) -> np.ndarray:
        """Approximate signed distance (voxels) of points to the cell membrane; < 0 inside."""
        return ellipsoid_distance(points_xyz, self.cell_centre, self.cell_axes)


def ellipsoid_distance(points: np.ndarray, centre: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """First-order signed distance to an ellipsoid surface: (r - 1) / |grad r|.

    Exact on the surface and accurate within a few voxels of it, which is all the
    membrane profile and the masks need; deep inside it only has to stay negative.
    """
    q = (points - centre) / axes
    r = np.sqrt(np.sum(q * q, axis=-1))
    grad = np.sqrt(np.sum((q / axes) ** 2, axis=-1))
    return (r - 1.0) * r / np.maximum(grad, 1e-6)


def surface_points(centre: np.ndarray, axes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` roughly even points on an ellipsoid (Fibonacci directions) and outward normals."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azimuth = np.pi * (1.0 + 5**0.5) * i
    u = np.stack(
        [np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1
    )
    t = 1.0 / np.sqrt(np.sum((u / axes) ** 2, axis=1))
    points = centre + u * t[:, None]
    normals = (points - centre) / axes**2
    return points, normals / np.linalg.norm(normals, axis=1, keepdims=True)


def ellipsoid_area(axes: np.ndarray) -> float:
    """Knud Thomsen's approximation (within ~1%)."""
    a, b, c = (float(v) ** 1.6075 for v in axes)
    return 4.0 * np.pi * ((a * b + a * c + b * c) / 3.0) ** (1 / 1.6075)


def frames_from_normals(normals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Proper rotations whose third column is the given normal, random spin about it."""
    helper = rng.normal(size=normals.shape)
    x = np.cross(normals, helper)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.cross(normals, x)  # z cross x = y keeps the frame right-handed (det +1)
    return np.stack([x, y, normals], axis=2)


def greedy_separated(points: np.ndarray, min_dist: float, limit: int) -> np.ndarray:
    """Indices of up to ``limit`` points, in order, each >= ``min_dist`` from those kept.

    A sequential pass over candidates; only used while laying out a few hundred objects.
    """
    kept: list[int] = []
    for i, p in enumerate(points):
        if len(kept) >= limit:
            break
        if not kept or np.min(np.linalg.norm(points[kept] - p, axis=1)) >= min_dist:
            kept.append(i)
    return np.asarray(kept, dtype=np.int64)


def segment_distance(points: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Distance of points (..., 3) to the segment p0-p1."""
    d = p1 - p0
    t = np.clip(((points - p0) @ d) / float(d @ d), 0.0, 1.0)
    return np.linalg.norm(points - (p0 + t[..., None] * d), axis=-1)


def _in_box(points: np.ndarray, size_xyz: np.ndarray, margin: float) -> np.ndarray:
    return np.all((points >= margin) & (points <= size_xyz - 1 - margin), axis=1)


def make_scene(size: SizeSpec, rng: np.random.Generator) -> Scene:
    """Lay out a cell in a lamella-like slab: the ellipsoid is cut by the top and bottom."""
    nz, ny, nx = size.shape_zyx
    extent = np.array([nx, ny, nz], dtype=np.float64)
    centre = extent / 2 - 0.5 + rng.uniform(-0.03, 0.03, 3) * extent * np.array([1, 1, 0])
    axes = extent * np.array([rng.uniform(0.38, 0.42), rng.uniform(0.33, 0.37), 0.62])

    # A straight filament through the cytoplasm, roughly in the slab plane.
    angle = rng.uniform(0, np.pi)
    half = 0.55 * min(axes[0], axes[1])
    direction = np.array([np.cos(angle), np.sin(angle), rng.uniform(-0.05, 0.05)])
    mid = centre + np.array([*rng.uniform(-0.15, 0.15, 2) * axes[:2], 0.0])
    microtubule = np.stack([mid - half * direction, mid + half * direction])

    # Vesicles: inside the cell, clear of the filament and of each other, whole in z.
    r_lo, r_hi = (7.0, 11.0) if nz < 100 else (11.0, 22.0)
    candidates = rng.uniform(0, 1, (4000, 3)) * (extent - 1)
    radii = rng.uniform(r_lo, r_hi, len(candidates)).round(1)
    ok = (
        (candidates[:, 2] >= radii + 4)
        & (candidates[:, 2] <= nz - 5 - radii)
        & (ellipsoid_distance(candidates, centre, axes) < -(radii + 8))
        & (segment_distance(candidates, *microtubule) > radii + MICROTUBULE_RADIUS + 6)
    )
    candidates, radii = np.round(candidates[ok]), radii[ok]
    keep = greedy_separated(candidates, 2 * r_hi + 6, size.vesicles)
    vesicles, vesicle_radii = candidates[keep], radii[keep]

    # Ribosomes: away from membrane, filament, vesicles and each other.
    rr = RIBOSOME_RADIUS
    candidates = np.round(rng.uniform(0, 1, (60 * size.ribosomes + 2000, 3)) * (extent - 1))
    ok = (
        _in_box(candidates, extent, rr + 2)
        & (ellipsoid_distance(candidates, centre, axes) < -(rr + 5))
        & (segment_distance(candidates, *microtubule) > rr + MICROTUBULE_RADIUS + 4)
    )
    if len(vesicles):
        gap = np.linalg.norm(candidates[:, None] - vesicles[None], axis=2) - vesicle_radii
        ok &= np.all(gap > rr + 5, axis=1)
    candidates = candidates[ok]
    ribosomes = candidates[greedy_separated(candidates, 2 * rr + 3, size.ribosomes)]
    ribosome_axes = rng.normal(size=ribosomes.shape)
    ribosome_axes /= np.linalg.norm(ribosome_axes, axis=1, keepdims=True)

    # ATP synthases: heads just inside the membrane, on the part of the shell in the slab.
    surface, normals = surface_points(centre, axes, 6000)
    heads = surface - ATP_HEAD_OFFSET * normals
    ok = _in_box(heads, extent, 5) & _in_box(surface, extent, 2)
    order = rng.permutation(int(ok.sum()))
    heads, normals = heads[ok][order], normals[ok][order]
    keep = greedy_separated(heads, 12.0, size.atp_synthases)
    atp_centres = np.round(heads[keep], 2)
    rotations = frames_from_normals(normals[keep], rng)

    return Scene(
        shape_zyx=size.shape_zyx,
        cell_centre=centre,
        cell_axes=axes,
        vesicle_centres=vesicles,
        vesicle_radii=vesicle_radii,
        microtubule=microtubule,
        ribosomes=ribosomes,
        ribosome_axes=ribosome_axes,
        atp_centres=atp_centres,
        atp_rotations=rotations,
    )
