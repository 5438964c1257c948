"""Tomogram statistics: 2-D limits from full resolution, 3-D limits from the coarsest level."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
from hypothesis import given, settings
from hypothesis import strategies as st

from precompute.errors import InputError
from precompute.jobs import TomogramJob
from precompute.tomogram import compute_stats, finite_values, gmm2

REPO = Path(__file__).resolve().parent.parent


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


def test_stats_2d_from_full_resolution_3d_from_coarsest_level(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fine = rng.normal(0.0, 4.0, (40, 48, 56)).astype(np.float32)  # noisy full resolution
    coarse = rng.normal(2.0, 0.5, (20, 24, 28)).astype(np.float32)
    coarse[:5] = rng.normal(0.0, 0.3, (5, 24, 28))  # dense (dark) material, a minority
    coarse[0, 0, 0] = 1000.0  # a fiducial-like outlier
    source = write_levels(tmp_path / "t.zarr", [fine, coarse])
    summary = compute_stats(job_for(tmp_path, source), clip=0.02)
    stats = summary.extra["stats"]
    assert summary.kind == "tomogram" and stats["level"] == 1
    assert stats["shape"] == [28, 24, 20] and stats["dtype"] == "float32"
    assert stats["mean"] == pytest.approx(float(coarse.astype(np.float64).mean()))
    assert stats["rms"] == pytest.approx(float(coarse.astype(np.float64).std()))
    # 2-D: the 1st and 99th percentiles of the full-resolution level (all of it is sampled).
    lo, hi = stats["contrast_2d"]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(fine.astype(np.float64), [0.01, 0.99])))
    assert stats["contrast_2d_clip"] == 0.02
    # 3-D: the dense side of the coarse background (mean 2.0); the outlier does not matter.
    lo3, hi3 = stats["contrast_3d"]
    assert lo3 < hi3 < 2.0
    assert max(stats["gmm"]["means"]) == pytest.approx(2.0, abs=0.1)


def test_full_resolution_sample_is_bounded_and_spans_the_depth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from precompute import tomogram

    fine = np.broadcast_to(np.arange(64, dtype=np.float32)[:, None, None], (64, 8, 8)).copy()
    source = write_levels(tmp_path / "t.zarr", [fine, fine[::2, ::2, ::2]])
    monkeypatch.setattr(tomogram, "SAMPLE_VOXELS", 4 * 8 * 8)  # room for 4 slices
    sample = tomogram._full_resolution_sample(source)
    assert sorted(set(sample.tolist())) == [8.0, 24.0, 40.0, 56.0]  # band centres
    assert sample.size == 4 * 8 * 8


def clipped_fraction(volume: np.ndarray, limits: list[float]) -> float:
    lo, hi = limits
    return float(((volume < lo) | (volume > hi)).mean())


# The demo tree (``make demo-data``: 184 x 630 x 630 tomograms) when it is there; CI checks
# the test-size tree of the same generator, which always is.
DEMO_ROOT = Path(os.environ.get("CRYOET_NG_DEMO_DATA", REPO / "demo-data"))


@pytest.fixture(params=["sample", "demo"])
def tomogram_tree(request: pytest.FixtureRequest) -> Path:
    if request.param == "sample":
        root: Path = request.getfixturevalue("sample_root")
        return root
    if not (DEMO_ROOT / "sample-manifest.json").is_file():
        pytest.skip(f"no demo tree at {DEMO_ROOT} (make demo-data, or set CRYOET_NG_DEMO_DATA)")
    return DEMO_ROOT


def test_contrast_limits_clip_at_most_2_percent_of_full_resolution_voxels(
    tomogram_tree: Path, tmp_path: Path
) -> None:
    """Every tomogram of the tree: the 2-D limits the precompute computes clip at most 2% of
    the full-resolution voxels (all of them counted, not a sample)."""
    from cryoet_ng.catalogue import Catalogue

    tomograms = [t for run in Catalogue.scan(tomogram_tree).runs() for t in run.tomograms]
    assert tomograms
    for t in tomograms:
        assert isinstance(t.omezarr_path, Path)
        job = TomogramJob(t.omezarr_path, tmp_path / f"{t.id}.json", t.id, t.voxel_spacing)
        stats = compute_stats(job).extra["stats"]
        level0 = read_level(t.omezarr_path, 0)
        ours = clipped_fraction(level0, stats["contrast_2d"])
        # What the limits were before: mean +/- 3 sd of the coarsest level's core values.
        coarse = read_level(t.omezarr_path, stats["level"]).astype(np.float64).ravel()
        core = coarse[
            (coarse >= np.percentile(coarse, 0.1)) & (coarse <= np.percentile(coarse, 99.9))
        ]
        binned = [core.mean() - 3 * core.std(), core.mean() + 3 * core.std()]
        before = clipped_fraction(level0, binned)
        level = stats["level"]
        print(
            f"{t.omezarr_path.name} {level0.shape}: clips {ours:.2%} "
            f"(limits from level {level}: {before:.2%})"
        )
        assert ours <= 0.02, (
            f"{t.omezarr_path}: 2-D limits clip {ours:.2%} of full-resolution voxels"
        )


def read_level(omezarr: Path, level: int) -> np.ndarray:
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(omezarr / str(level))}}
    return np.asarray(ts.open(spec).result().read().result())


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
