"""Tomogram statistics from the coarsest OME-Zarr level."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
from hypothesis import given, settings
from hypothesis import strategies as st

from precompute.errors import InputError
from precompute.jobs import TomogramJob
from precompute.tomogram import compute_stats, finite_values, gmm2


def write_levels(folder: Path, levels: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    datasets = [{"path": str(i)} for i in range(len(levels))]
    (folder / ".zattrs").write_text(json.dumps({"multiscales": [{"datasets": datasets}]}))
    for i, data in enumerate(levels):
        spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(folder / str(i))}}
        meta = {"shape": list(data.shape), "chunks": [16] * data.ndim, "dtype": data.dtype.str}
        ts.open({**spec, "metadata": meta, "create": True}).result().write(data).result()
    return folder


def job_for(tmp_path: Path, source: Path) -> TomogramJob:
    return TomogramJob(
        source=source,
        summary_file=tmp_path / "out" / "5-tomogram.summary.json",
        tomogram_id="5",
        voxel_spacing=10.0,
    )


def test_stats_use_coarsest_level(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fine = np.zeros((8, 8, 8), np.float32)  # would give rms 0 if it were used
    coarse = rng.normal(2.0, 0.5, (20, 24, 28)).astype(np.float32)
    coarse[:5] = rng.normal(0.0, 0.3, (5, 24, 28))  # dense (dark) material, a minority
    coarse[0, 0, 0] = 1000.0  # a fiducial-like outlier
    source = write_levels(tmp_path / "t.zarr", [fine, coarse])
    summary = compute_stats(job_for(tmp_path, source))
    stats = summary.extra["stats"]
    assert summary.kind == "tomogram" and stats["level"] == 1
    assert stats["shape"] == [28, 24, 20] and stats["dtype"] == "float32"
    assert stats["mean"] == pytest.approx(float(coarse.astype(np.float64).mean()))
    assert stats["rms"] == pytest.approx(float(coarse.astype(np.float64).std()))
    lo, hi = stats["contrast_2d"]
    assert coarse.min() <= lo < hi < 10  # the outlier does not stretch the window
    lo3, hi3 = stats["contrast_3d"]
    assert lo3 < hi3 < 2.0  # dense side of the background (mean 2.0)
    assert max(stats["gmm"]["means"]) == pytest.approx(2.0, abs=0.1)


def test_gmm_recovers_two_components() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(-1, 0.2, 30_000), rng.normal(3, 0.5, 70_000)])
    weights, means, sds = gmm2(values)
    order = np.argsort(means)
    np.testing.assert_allclose(means[order], [-1, 3], atol=0.05)
    np.testing.assert_allclose(sds[order], [0.2, 0.5], atol=0.05)
    np.testing.assert_allclose(weights[order], [0.3, 0.7], atol=0.02)


def test_bad_tomogram(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an OME-Zarr"):
        compute_stats(job_for(tmp_path, tmp_path / "missing.zarr"))
    source = write_levels(tmp_path / "flat.zarr", [np.zeros((4, 4), np.float32)])
    with pytest.raises(InputError, match="3-D"):
        compute_stats(job_for(tmp_path, source))
    assert not (tmp_path / "out").exists()


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 30), st.integers(1, 20), st.integers(1, 20)),
    slab=st.integers(1, 3000),
    cap=st.integers(1, 5000),
    seed=st.integers(0, 1000),
)
def test_values_read_in_slabs_are_an_even_sample(shape, slab, cap, seed) -> None:
    """Slab by slab, every k-th finite voxel in C order (k = ceil(voxels / cap)): exactly
    the sample of the whole array, wherever the slabs fall."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=shape).astype(np.float32)
    data[rng.random(shape) < 0.05] = np.nan
    store = ts.open({"driver": "array", "array": data, "dtype": "float32"}).result()
    got = finite_values(store, Path("t.zarr"), 0, slab_voxels=slab, max_values=cap)
    step = max(1, -(-data.size // cap))
    expected = data.reshape(-1)[::step].astype(np.float64)
    np.testing.assert_array_equal(got, expected[np.isfinite(expected)])
