"""Image-layer statistics of a tomogram (contrast limits, mean, rms) from its coarsest level.

The level is read in slabs and, beyond ``MAX_VALUES`` voxels, evenly sampled
(:func:`finite_values`), so memory does not grow with the tomogram.

The coarsest OME-Zarr level (typically 1/64 of the voxels) is enough for display limits and
reads in well under a second, as the portal does for its volume-rendering limits:

``contrast_2d``
    ``mean +/- 3 rms`` of the central 99.8 % of values (outliers such as gold fiducials
    would otherwise inflate the rms), clipped to the data range.
``contrast_3d``
    A 2-component Gaussian mixture (1-D EM in numpy) on the same values; the heavier
    component is the background. The window runs from 3 sd to 1 sd below the background
    mean, on the dense (dark) side, so volume rendering shows dense material only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorstore as ts

from cryoet_ng.store import TreePath, kvstore_spec
from cryoet_ng.summaries import Summary
from precompute.errors import InputError
from precompute.jobs import TomogramJob

TRIM = (0.1, 99.9)  # percentiles kept for the 2-D statistics
EM_SAMPLES = 200_000
EM_ITERATIONS = 100
SLAB_VOXELS = 1 << 24  # voxels read at a time (64 MiB of float32)
MAX_VALUES = 1 << 25  # values kept for the statistics (256 MiB as float64)


def compute_stats(job: TomogramJob) -> Summary:
    """Statistics of ``job.source``, as the summary the runner writes to ``job.summary``."""
    level, path = _coarsest_level(job.source)
    try:
        store = ts.open({"driver": "zarr", "kvstore": kvstore_spec(path)}).result()
    except Exception as exc:  # tensorstore raises ValueError / RuntimeError variants
        raise InputError(job.source, f"cannot read level {level}: {exc}") from exc
    if store.ndim != 3:
        raise InputError(job.source, f"tomogram must be 3-D (z, y, x), got shape {store.shape}")
    finite = finite_values(store, job.source, level)
    if finite.size == 0:
        raise InputError(job.source, f"level {level} has no finite values")
    stats = {
        **image_stats(finite),
        "level": level,
        "shape": [int(n) for n in store.shape[::-1]],
        "dtype": str(store.dtype.numpy_dtype),
    }
    summary = Summary(
        kind="tomogram",
        extra={
            "stats": stats,
            "tomogram_id": job.tomogram_id,
            "source": str(job.source),
            "voxel_spacing": job.voxel_spacing,
        },
    )
    return summary


def finite_values(
    store: ts.TensorStore,
    source: TreePath,
    level: int,
    slab_voxels: int = SLAB_VOXELS,
    max_values: int = MAX_VALUES,
) -> np.ndarray:
    """The finite values of a (z, y, x) level as float64, read slab by slab.

    Memory is bounded whatever the level's size: slabs of about ``SLAB_VOXELS`` are read in
    turn, and a level of more than ``MAX_VALUES`` voxels gives every k-th voxel (in C order,
    k = ceil(voxels / MAX_VALUES)): an even, deterministic sample; smaller levels give all.
    """
    nz, ny, nx = (int(n) for n in store.shape)
    plane = ny * nx
    step = max(1, -(-nz * plane // max_values))
    slab = max(1, slab_voxels // max(plane, 1))
    parts = []
    for z0 in range(0, nz, slab):
        try:
            data = store[z0 : min(z0 + slab, nz)].read().result()
        except Exception as exc:  # tensorstore raises ValueError / RuntimeError variants
            raise InputError(source, f"cannot read level {level} at z {z0}: {exc}") from exc
        first = -(z0 * plane) % step  # the slab's first voxel whose C-order index is k * step
        picked = data.reshape(-1)[first::step].astype(np.float64)
        parts.append(picked[np.isfinite(picked)])
    return np.concatenate(parts) if parts else np.zeros(0)


def image_stats(values: np.ndarray) -> dict[str, Any]:
    """Contrast limits, mean and rms of a flat float64 array of finite values."""
    lo_data, hi_data = float(values.min()), float(values.max())
    lo_trim, hi_trim = np.percentile(values, TRIM)
    core = values[(values >= lo_trim) & (values <= hi_trim)]
    mean, rms = float(values.mean()), float(values.std())
    core_mean, core_rms = float(core.mean()), float(core.std())
    contrast_2d = [max(core_mean - 3 * core_rms, lo_data), min(core_mean + 3 * core_rms, hi_data)]
    weights, means, sds = gmm2(core)
    bg = int(np.argmax(weights))
    contrast_3d = [max(means[bg] - 3 * sds[bg], lo_data), max(means[bg] - sds[bg], lo_data)]
    return {
        "contrast_2d": contrast_2d,
        "contrast_3d": [float(v) for v in contrast_3d],
        "mean": mean,
        "rms": rms,
        "gmm": {
            "weights": [float(w) for w in weights],
            "means": [float(m) for m in means],
            "sds": [float(s) for s in sds],
        },
    }


def gmm2(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-component 1-D Gaussian mixture by EM on an evenly strided (deterministic) sample."""
    sample = np.sort(values)[:: max(1, values.size // EM_SAMPLES)]
    means = np.percentile(sample, [25, 75]).astype(np.float64)
    spread = max(float(sample.std()), 1e-12)
    sds = np.array([spread, spread]) / 2
    weights = np.array([0.5, 0.5])
    for _ in range(EM_ITERATIONS):
        z = (sample[:, None] - means) / sds
        log_p = np.log(weights) - np.log(sds) - 0.5 * z * z
        log_p -= log_p.max(axis=1, keepdims=True)
        resp = np.exp(log_p)
        resp /= resp.sum(axis=1, keepdims=True)
        n = resp.sum(axis=0) + 1e-12
        new_means = (resp * sample[:, None]).sum(axis=0) / n
        var = (resp * (sample[:, None] - new_means) ** 2).sum(axis=0) / n
        sds = np.sqrt(np.maximum(var, (spread * 1e-6) ** 2))
        weights = n / n.sum()
        converged = np.allclose(new_means, means, rtol=0, atol=spread * 1e-6)
        means = new_means
        if converged:
            break
    return weights, means, sds


def _coarsest_level(source: TreePath) -> tuple[int, TreePath]:
    attrs = source / ".zattrs"
    if not source.is_dir():
        raise InputError(source, "not an OME-Zarr folder")
    if not attrs.is_file():
        if (source / ".zarray").is_file():
            return 0, source
        raise InputError(source, "no .zattrs (OME-Zarr multiscales) and no .zarray")
    try:
        datasets = json.loads(attrs.read_text())["multiscales"][0]["datasets"]
        return len(datasets) - 1, source / datasets[-1]["path"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(attrs, f"OME-Zarr .zattrs without multiscales datasets: {exc}") from exc
