"""Synthetic tomogram content and the masks that go with it.

Contrast follows cryo-ET: dense matter (protein, lipid head groups) is *darker*
(lower values) than ice. The tomogram is the sum of
- correlated gaussian noise plus a low-frequency drift (ice thickness, CTF leftovers),
- the cell membrane: two dark leaflets about 3 voxels apart on an ellipsoidal shell, a
  slightly darker cytoplasm inside,
- vesicles (small bilayer spheres), a microtubule (hollow dark tube),
- ribosome-like blobs (two subunits), ATP synthase heads on stalks at the membrane, and
  optionally many faint granules (the crowded run).
Everything is vectorised; the large fields are computed in z slabs to bound temporaries.
"""

from __future__ import annotations

import numpy as np

from cryoet_ng.sample.scene import (
    ATP_HEAD_OFFSET,
    MEMBRANE_HALF_WIDTH,
    MICROTUBULE_RADIUS,
    RIBOSOME_RADIUS,
    Scene,
    segment_distance,
)

_SLAB = 16  # z slices per block of full-volume arithmetic
_LEAFLET = 1.5  # leaflet offset from the bilayer mid-plane (voxels)


def _grid(
    shape_zyx: tuple[int, int, int], z0: int, z1: int, step: float = 1.0, shift: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable x, y, z voxel coordinates of slab z0:z1 (optionally of a binned grid)."""
    _, ny, nx = shape_zyx
    x = (np.arange(nx) * step + shift).astype(np.float32).reshape(1, 1, nx)
    y = (np.arange(ny) * step + shift).astype(np.float32).reshape(1, ny, 1)
    z = (np.arange(z0, z1) * step + shift).astype(np.float32).reshape(z1 - z0, 1, 1)
    return x, y, z


def cell_distance_field(
    scene: Scene,
    shape_zyx: tuple[int, int, int] | None = None,
    step: float = 1.0,
    shift: float = 0.0,
) -> np.ndarray:
    """Signed distance (voxels of the full grid) to the cell membrane at every voxel, float32."""
    shape = scene.shape_zyx if shape_zyx is None else shape_zyx
    (cx, cy, cz), (a, b, c) = (
        scene.cell_centre.astype(np.float32),
        scene.cell_axes.astype(np.float32),
    )
    out = np.empty(shape, np.float32)
    for z0 in range(0, shape[0], _SLAB):
        z1 = min(z0 + _SLAB, shape[0])
        x, y, z = _grid(shape, z0, z1, step, shift)
        qx, qy, qz = ((x - cx) / a), ((y - cy) / b), ((z - cz) / c)
        r2 = qx * qx + qy * qy + qz * qz  # float32 throughout: half the memory traffic
        g2 = (qx / a) ** 2 + (qy / b) ** 2 + (qz / c) ** 2
        r = np.sqrt(r2)
        out[z0:z1] = (r2 - r) / np.sqrt(np.maximum(g2, 1e-12))
    return out


def _bilayer(d: np.ndarray, amplitude: float) -> np.ndarray:
    """Two dark leaflets at d = +-_LEAFLET (d = signed distance to the mid-plane)."""
    s = np.float32(1.0 / (2 * 0.7**2))
    return np.float32(-amplitude) * (
        np.exp(-((d - _LEAFLET) ** 2) * s) + np.exp(-((d + _LEAFLET) ** 2) * s)
    )


def _add_shell(volume: np.ndarray, d: np.ndarray) -> None:
    """Cell membrane bilayer plus a slightly denser cytoplasm, from the distance field.

    The exponentials are evaluated only within 6 voxels of the membrane (a few % of the
    volume); elsewhere the profile is flat to float32 precision.
    """
    for z0 in range(0, d.shape[0], _SLAB):
        dz, vz = d[z0 : z0 + _SLAB], volume[z0 : z0 + _SLAB]
        vz[dz < 0] = np.float32(-0.35)
        near = np.abs(dz) < 6
        dn = dz[near]
        vz[near] = _bilayer(dn, 1.8) + np.float32(-0.35) * _soft_ball(
            dn, -_LEAFLET - 1.5, 2.0
        ).astype(np.float32)


def _box(
    centre_xyz: np.ndarray, radius: float, shape_zyx: tuple[int, int, int]
) -> tuple[slice, ...]:
    """z, y, x slices of the cube around a centre, clipped to the volume."""
    lo = np.maximum(np.floor(centre_xyz - radius), 0).astype(int)
    hi = np.minimum(np.ceil(centre_xyz + radius) + 1, np.array(shape_zyx[::-1])).astype(int)
    return tuple(slice(lo[i], hi[i]) for i in (2, 1, 0))


def _box_points(box: tuple[slice, ...]) -> np.ndarray:
    """xyz coordinates (z, y, x, 3) of every voxel of a box."""
    z, y, x = np.meshgrid(*(np.arange(s.start, s.stop) for s in box), indexing="ij")
    return np.stack([x, y, z], axis=-1).astype(np.float32)


def _stamp(volume: np.ndarray, centres_xyz: np.ndarray, template: np.ndarray) -> None:
    """Add a template centred at each whole-voxel centre; clipped at the volume's edges.

    ``template`` is one odd cube (k, k, k) shared by all centres, or one per centre
    (n, k, k, k). One scatter-add for all particles instead of a loop over them.
    """
    if len(centres_xyz) == 0:
        return
    h = template.shape[-1] // 2
    shape = np.array(volume.shape)
    centres = np.asarray(centres_xyz, np.int64)[:, ::-1]  # zyx
    offsets = np.stack(np.meshgrid(*(np.arange(-h, h + 1),) * 3, indexing="ij"), -1).reshape(-1, 3)
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    flat = (centres @ strides)[:, None] + (offsets @ strides)[None]  # (n, k)
    per_centre = template.reshape(-1 if template.ndim == 4 else 1, offsets.shape[0])
    values = np.broadcast_to(per_centre, flat.shape)
    if np.any(centres < h) or np.any(centres >= shape - h):  # some stamps cross an edge
        idx = centres[:, None] + offsets[None]
        ok = np.all((idx >= 0) & (idx < shape), axis=2)
        flat, values = flat[ok], values[ok]
    np.add.at(volume.reshape(-1), flat.ravel(), values.ravel())


def _soft_ball(dist: np.ndarray, radius: float, edge: float = 0.8) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(np.clip((dist - radius) / edge, -30, 30)))


def _ribosome_density(scene: Scene, volume: np.ndarray, rng: np.random.Generator) -> None:
    """Large + small subunit, oriented along each particle's axis, with some inner texture."""
    r = RIBOSOME_RADIUS
    h = int(np.ceil(r + 2))
    grid = np.stack(np.meshgrid(*(np.arange(-h, h + 1),) * 3, indexing="ij"), -1)[..., ::-1]
    grid = grid.astype(np.float32)  # (k, k, k, xyz) offsets
    axes = scene.ribosome_axes.astype(np.float32)
    # Distances of each template voxel to both subunit centres, per particle: (n, k, k, k).
    large = np.linalg.norm(grid[None] + 0.25 * r * axes[:, None, None, None], axis=-1)
    small = np.linalg.norm(grid[None] - 0.55 * r * axes[:, None, None, None], axis=-1)
    density = np.minimum(_soft_ball(large, 0.72 * r) + _soft_ball(small, 0.5 * r), 1.0)
    density *= 1.0 + 0.3 * rng.standard_normal(density.shape).astype(np.float32)
    _stamp(volume, scene.ribosomes, np.float32(-2.2) * density.astype(np.float32))


def _atp_density(scene: Scene, volume: np.ndarray) -> None:
    """Head sphere at the location plus a stalk along +z (towards the membrane)."""
    for centre, rot in zip(scene.atp_centres, scene.atp_rotations, strict=True):
        box = _box(centre, ATP_HEAD_OFFSET + 3, volume.shape)
        local = (_box_points(box) - centre) @ rot  # world = R @ local + centre
        head = _soft_ball(np.linalg.norm(local, axis=-1), 3.0, 0.6)
        radial = np.linalg.norm(local[..., :2], axis=-1)
        stalk = (
            _soft_ball(radial, 1.0, 0.5) * (local[..., 2] > 0) * (local[..., 2] < ATP_HEAD_OFFSET)
        )
        volume[box] += np.float32(-1.8) * np.minimum(head + stalk, 1.0).astype(np.float32)


def _vesicle_density(scene: Scene, volume: np.ndarray) -> None:
    for centre, radius in zip(scene.vesicle_centres, scene.vesicle_radii, strict=True):
        box = _box(centre, radius + 5, volume.shape)
        d = np.linalg.norm(_box_points(box) - centre, axis=-1) - np.float32(radius)
        lumen = np.float32(0.25) * _soft_ball(d, -_LEAFLET - 1.0)  # lighter lumen
        volume[box] += _bilayer(d, 1.6) + lumen.astype(np.float32)


def _microtubule_density(scene: Scene, volume: np.ndarray) -> None:
    p0, p1 = scene.microtubule
    lo = np.minimum(p0, p1) - MICROTUBULE_RADIUS - 4
    hi = np.maximum(p0, p1) + MICROTUBULE_RADIUS + 4
    box = tuple(
        slice(max(int(np.floor(lo[i])), 0), min(int(np.ceil(hi[i])) + 1, volume.shape[2 - i]))
        for i in (2, 1, 0)
    )
    d = segment_distance(_box_points(box), p0.astype(np.float32), p1.astype(np.float32))
    volume[box] += np.float32(-2.0) * np.exp(-((d - MICROTUBULE_RADIUS) ** 2) / 2.0).astype(
        np.float32
    )


def _smooth_noise(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Unit-variance gaussian noise correlated over ~2 voxels ([1 2 1]/4 along each axis).

    Two full-size buffers, used in turn: fresh 300 MB allocations (page faults) cost more
    than the arithmetic itself at demo size.
    """
    noise = rng.standard_normal(shape, dtype=np.float32)
    out = np.empty_like(noise)
    norm = np.float32(0.25 / np.sqrt(6 / 16))  # keeps unit variance after each pass
    for axis in range(3):

        def sl(start: int | None, stop: int | None, axis: int = axis) -> tuple[slice, ...]:
            return tuple(slice(start, stop) if a == axis else slice(None) for a in range(3))

        np.multiply(noise, np.float32(2), out=out)
        out[sl(1, None)] += noise[sl(None, -1)]
        out[sl(None, -1)] += noise[sl(1, None)]
        out[sl(0, 1)] += noise[sl(0, 1)]  # edges: replicate the border voxel
        out[sl(-1, None)] += noise[sl(-1, None)]
        out *= norm
        noise, out = out, noise
    return noise


def _add_drift(volume: np.ndarray, coarse: np.ndarray, amplitude: float) -> None:
    """Add a linear interpolation of a coarse grid (corners aligned) to ``volume``.

    x and y are interpolated on the small grid; z is blended slice by slice into the
    volume so no full-size temporary is made.
    """
    plane = coarse
    for axis in (1, 2):
        n = volume.shape[axis]
        pos = np.linspace(0, plane.shape[axis] - 1, n)
        i0 = np.minimum(pos.astype(int), plane.shape[axis] - 2)
        w = (pos - i0).reshape([-1 if a == axis else 1 for a in range(3)])
        plane = np.take(plane, i0, axis) * (1 - w) + np.take(plane, i0 + 1, axis) * w
    plane = (plane * amplitude).astype(np.float32)
    pos = np.linspace(0, plane.shape[0] - 1, volume.shape[0])
    for z, p in enumerate(pos):
        i0 = min(int(p), plane.shape[0] - 2)
        w = np.float32(p - i0)
        volume[z] += plane[i0] * (1 - w) + plane[i0 + 1] * w


def render_structures(scene: Scene, d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise-free density of every placed structure, float32 (z, y, x).

    ``d``: :func:`cell_distance_field` of the scene (shared with the masks).
    """
    volume = np.zeros(scene.shape_zyx, np.float32)
    _add_shell(volume, d)
    _vesicle_density(scene, volume)
    _microtubule_density(scene, volume)
    _ribosome_density(scene, volume, rng)
    _atp_density(scene, volume)
    return volume


def free_points(scene: Scene, structures: np.ndarray, points_xyz: np.ndarray) -> np.ndarray:
    """True for whole-voxel points inside the cytoplasm where no structure has density.

    The soft edges of the rendered structures reach ~2 voxels beyond them, which gives
    free points a natural clearance.
    """
    inside = scene.cell_distance(points_xyz) < -(MEMBRANE_HALF_WIDTH + 3)
    idx = np.clip(np.round(points_xyz).astype(np.int64), 0, np.array(scene.size_xyz) - 1)
    values = structures[idx[:, 2], idx[:, 1], idx[:, 0]]
    # Only the cytoplasm's flat offset (-0.35) may be there, nothing denser.
    return inside & (values > -0.45)


def finish_tomogram(
    scene: Scene, structures: np.ndarray, granules: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Add faint granules, low-frequency drift and correlated noise; quantise to 1/64.

    Quantising to a 1/64 grid keeps plenty of dynamic range but zeroes the low mantissa
    bytes, so blosc's byte shuffle roughly halves the size of the noise-dominated chunks.
    Works in place on ``structures``.
    """
    volume = structures
    _stamp(volume, granules, granule_template())
    nz, ny, nx = scene.shape_zyx
    coarse = rng.standard_normal((nz // 24 + 2, ny // 24 + 2, nx // 24 + 2)).astype(np.float32)
    _add_drift(volume, coarse, 0.35)
    noise = _smooth_noise(scene.shape_zyx, rng)
    noise *= np.float32(0.9)
    volume += noise
    del noise
    volume *= np.float32(64)
    np.round(volume, out=volume)
    volume /= np.float32(64)
    return volume


def granule_template() -> np.ndarray:
    offsets = np.stack(np.meshgrid(*(np.arange(-1, 2),) * 3, indexing="ij"), -1)
    return np.float32(-0.9) * np.exp(-np.sum(offsets**2, axis=-1) / 1.2).astype(np.float32)


# --- masks ---------------------------------------------------------------------------------


def cytoplasm_mask(d: np.ndarray) -> np.ndarray:
    """int8 0/1: everything inside the inner edge of the cell membrane (``d``: distance field)."""
    return (d < -MEMBRANE_HALF_WIDTH).astype(np.int8)


def membrane_mask(scene: Scene, d: np.ndarray) -> np.ndarray:
    """int8 0/1: the cell membrane and the vesicle membranes (what MemBrain-seg finds)."""
    mask = np.abs(d) <= MEMBRANE_HALF_WIDTH
    for centre, radius in zip(scene.vesicle_centres, scene.vesicle_radii, strict=True):
        box = _box(centre, radius + 4, mask.shape)
        d = np.linalg.norm(_box_points(box) - centre, axis=-1) - radius
        mask[box] |= np.abs(d) <= MEMBRANE_HALF_WIDTH
    return mask.astype(np.int8)


def vesicle_labels(scene: Scene) -> np.ndarray:
    """uint16 instance mask: vesicle i (lumen and membrane) has label i + 1."""
    labels = np.zeros(scene.shape_zyx, np.uint16)
    for i, (centre, radius) in enumerate(
        zip(scene.vesicle_centres, scene.vesicle_radii, strict=True)
    ):
        box = _box(centre, radius + 3, labels.shape)
        inside = np.linalg.norm(_box_points(box) - centre, axis=-1) <= radius + 2
        labels[box][inside] = i + 1
    return labels


def microtubule_mask_binned(scene: Scene) -> np.ndarray:
    """int8 0/1 microtubule mask on the 2x binned grid (shape ceil(n/2) per axis).

    Binned voxel j covers full-resolution voxels 2j and 2j+1, whose common centre is at
    full-resolution coordinate 2j + 0.5: the tube is tested there, so the mask lands on
    the same physical place as the tube in the tomogram.
    """
    binned = tuple(-(-n // 2) for n in scene.shape_zyx)
    mask = np.zeros(binned, np.int8)
    reach = MICROTUBULE_RADIUS + 2
    p0, p1 = scene.microtubule
    lo = np.maximum(np.floor((np.minimum(p0, p1) - reach - 0.5) / 2), 0).astype(int)
    hi = np.minimum(np.ceil((np.maximum(p0, p1) + reach - 0.5) / 2) + 1, binned[::-1])
    box = tuple(slice(lo[i], int(hi[i])) for i in (2, 1, 0))
    points = _box_points(box) * 2 + np.float32(0.5)
    d = segment_distance(points, p0.astype(np.float32), p1.astype(np.float32))
    mask[box] = d <= reach
    return mask
