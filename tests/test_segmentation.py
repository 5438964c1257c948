"""Segmentation precompute, read back by tensorstore and cloud-volume (readers we did not write)."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tensorstore as ts
from cloudvolume import CloudVolume

from cryoet_ng.config import PrecomputeConfig
from cryoet_ng.summaries import Summary, read_summary
from precompute import segmentation
from precompute.errors import InputError
from precompute.jobs import AnnotationJob

SPACING = 13.48  # Å: 1.348 nm, not a whole number of nm


def write_zarr(folder: Path, data: np.ndarray, chunks: int = 32) -> Path:
    """A minimal OME-Zarr (v2, '/' separator, level 0 only), written with tensorstore."""
    folder.mkdir(parents=True)
    axes = [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]
    multiscales = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]
    (folder / ".zattrs").write_text(json.dumps({"multiscales": multiscales}))
    (folder / ".zgroup").write_text('{"zarr_format": 2}')
    metadata = {
        "shape": list(data.shape),
        "chunks": [chunks] * data.ndim,
        "dtype": data.dtype.str,
        "dimension_separator": "/",
    }
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(folder / "0")}}
    ts.open({**spec, "metadata": metadata, "create": True}).result().write(data).result()
    return folder


def blobs(shape: tuple[int, int, int], labels: int, seed: int, dtype: type) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, dtype)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    for label in range(1, labels + 1):
        c = rng.integers(0, shape)
        r = rng.uniform(4, min(shape) / 3)
        out[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + ((xx - c[2]) / 1.5) ** 2 < r * r] = label
    return out


def convert(job: AnnotationJob, options: PrecomputeConfig) -> Summary:
    """The converter, then the summary written beside the output, as the runner does."""
    summary = segmentation.convert(job, options)
    summary.write(job.summary)
    return summary


def make_job(tmp_path: Path, source: Path, shape: str, size_xyz=None) -> AnnotationJob:
    return AnnotationJob(
        source=source,
        shape=shape,
        output=tmp_path / "out" / f"7-thing-1.0_{shape.lower()}",
        annotation_id="7",
        object_name="thing",
        voxel_spacing=SPACING,
        volume_size_xyz=size_xyz,
    )


def reference_mode(data: np.ndarray, step: tuple[int, int, int]) -> np.ndarray:
    """Most frequent value of each block (partial edge blocks use only real voxels; ties ->
    smallest), written independently of the implementation: sentinel padding + counting."""
    padded_shape = [-(-n // s) * s for n, s in zip(data.shape, step, strict=True)]
    padded = np.full(padded_shape, -1, np.int64)
    padded[: data.shape[0], : data.shape[1], : data.shape[2]] = data
    out_shape = [p // s for p, s in zip(padded_shape, step, strict=True)]
    blocks = padded.reshape(out_shape[0], step[0], out_shape[1], step[1], out_shape[2], step[2])
    rows = blocks.transpose(0, 2, 4, 1, 3, 5).reshape(-1, int(np.prod(step)))
    counts = (rows[:, :, None] == rows[:, None, :]).sum(axis=2)
    counts[rows < 0] = -1
    # Highest count first, then the smallest value.
    order = np.lexsort((rows, -counts), axis=1)[:, 0]
    return rows[np.arange(len(rows)), order].reshape(out_shape)


def reference_pyramid(data: np.ndarray, info: dict) -> list[np.ndarray]:
    levels = [data.astype(np.int64)]
    for prev, scale in zip(info["scales"], info["scales"][1:], strict=False):
        step = tuple(
            round(b / a) for a, b in zip(prev["resolution"], scale["resolution"], strict=True)
        )[::-1]
        levels.append(reference_mode(levels[-1], step))
    return levels


def closed(vertices: np.ndarray, faces: np.ndarray, tolerance: float) -> bool:
    """Every edge shared by exactly two triangles once coincident vertices are welded."""
    keys = np.round(vertices / tolerance).astype(np.int64)
    _, weld = np.unique(keys, axis=0, return_inverse=True)
    f = weld.reshape(-1)[faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return len(f) > 0 and bool(np.all(counts == 2))


def check_output(job: AnnotationJob, data: np.ndarray, instance: bool) -> None:
    out = job.output
    info = json.loads((out / "info").read_text())
    assert info["data_type"] == "uint32"
    assert info["scales"][0]["resolution"] == [SPACING / 10] * 3
    assert max(info["scales"][-1]["size"]) <= 64
    expected = reference_pyramid(data, info)
    cv_url = "file://" + str(out)
    for index, (scale, ref) in enumerate(zip(info["scales"], expected, strict=True)):
        assert scale["encoding"] == "compressed_segmentation"
        spec = {
            "driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "file", "path": str(out)},
            "scale_index": index,
        }
        got = ts.open(spec, read=True).result()[..., 0].read().result().transpose(2, 1, 0)
        np.testing.assert_array_equal(got, ref, err_msg=f"tensorstore scale {index}")
        # Missing chunks are background (tensorstore skips all-zero chunks in shards).
        cv = CloudVolume(cv_url, mip=index, progress=False, fill_missing=True)
        np.testing.assert_array_equal(cv[:, :, :][..., 0].transpose(2, 1, 0), ref)

    labels = sorted(int(v) for v in np.unique(data) if v != 0)
    props = json.loads((out / "segment_properties" / "info").read_text())
    assert props["inline"]["ids"] == [str(v) for v in labels]
    names = props["inline"]["properties"][0]["values"]
    assert props["inline"]["properties"][0]["type"] == "label"
    assert names == ([f"thing {v}" for v in labels] if instance else ["thing"] * len(labels))

    cv = CloudVolume(cv_url, progress=False)
    res = SPACING / 10
    for label in labels:
        mesh = cv.mesh.get(label, lod=0)[label]
        assert closed(mesh.vertices, mesh.faces, tolerance=1e-3 * res), f"label {label} open"
        z, y, x = np.nonzero(data == label)
        lower = np.array([x.min(), y.min(), z.min()]) * res
        upper = (np.array([x.max(), y.max(), z.max()]) + 1) * res
        np.testing.assert_allclose(mesh.vertices.min(axis=0), lower, atol=res)
        np.testing.assert_allclose(mesh.vertices.max(axis=0), upper, atol=res)
        coarse = cv.mesh.get(label, lod=1)[label]
        assert len(coarse.faces) > 0

    summary = read_summary(job.summary)
    assert summary is not None and summary.kind == "segmentation"
    values, counts = np.unique(data[data != 0], return_counts=True)
    assert summary.labels == dict(zip(values.tolist(), counts.tolist(), strict=True))
    assert summary.count == int(np.count_nonzero(data))
    z, y, x = np.nonzero(data)
    spacing_m = SPACING * 1e-10
    np.testing.assert_allclose(summary.bounds[0], np.array([x.min(), y.min(), z.min()]) * spacing_m)
    np.testing.assert_allclose(
        summary.bounds[1], (np.array([x.max(), y.max(), z.max()]) + 1) * spacing_m
    )
    occupancy = summary.occupancy
    assert occupancy is not None and occupancy.measure == "fraction"
    covered = float(np.sum(occupancy.values * _cell_volumes(occupancy, data.shape, spacing_m)))
    assert covered == pytest.approx(summary.count * spacing_m**3, rel=1e-3)


def _cell_volumes(occupancy, shape_zyx, spacing_m) -> np.ndarray:
    extent = np.array(shape_zyx[::-1]) * spacing_m
    g = occupancy.grid
    sides = [
        np.clip(extent[a] - np.arange(g.shape[a]) * g.cell_size, 0, g.cell_size) for a in range(3)
    ]
    return (sides[2][:, None, None] * sides[1][None, :, None] * sides[0][None, None, :]).ravel()


def test_instance_mask_zarr_sharded(tmp_path: Path) -> None:
    data = blobs((70, 101, 150), labels=6, seed=3, dtype=np.uint16)
    source = write_zarr(tmp_path / "mask.zarr", data)
    job = make_job(tmp_path, source, "InstanceSegmentationMask", size_xyz=(150, 101, 70))
    options = PrecomputeConfig(shard_min_voxels=100_000, mesh_lods=3)
    summary = convert(job, options)
    info = json.loads((job.output / "info").read_text())
    assert "sharding" in info["scales"][0] and "sharding" not in info["scales"][-1]
    assert summary.count == int(np.count_nonzero(data))
    check_output(job, data, instance=True)
    mesh_info = json.loads((job.output / "mesh" / "info").read_text())
    assert mesh_info["@type"] == "neuroglancer_multilod_draco"
    assert "sharding" in mesh_info
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_binary_mask_mrc_unsharded_is_deterministic(tmp_path: Path) -> None:
    data = (blobs((45, 77, 66), labels=3, seed=5, dtype=np.int8) > 0).astype(np.int8)
    path = tmp_path / "mask.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = SPACING
    job = make_job(tmp_path, path, "SegmentationMask")
    convert(job, PrecomputeConfig())
    check_output(job, data, instance=False)
    first = {
        p.relative_to(job.output): p.read_bytes() for p in job.output.rglob("*") if p.is_file()
    }
    convert(job, PrecomputeConfig())
    again = {
        p.relative_to(job.output): p.read_bytes() for p in job.output.rglob("*") if p.is_file()
    }
    assert first.keys() == again.keys()
    assert all(first[k] == again[k] for k in first), "output differs between identical runs"


def test_mode_matches_tensorstore_ties(tmp_path: Path) -> None:
    from precompute.segmentation.volume import downsample_mode

    rng = np.random.default_rng(0)
    data = rng.integers(0, 4, size=(9, 13, 7)).astype(np.uint16)  # many ties, odd sizes
    for step in [(2, 2, 2), (1, 2, 2)]:
        theirs = ts.downsample(ts.array(data), list(step), "mode").read().result()
        np.testing.assert_array_equal(downsample_mode(data, step, binary=False), theirs)
        np.testing.assert_array_equal(reference_mode(data, step), theirs)
        bits = (data > 1).astype(np.uint8)
        theirs = ts.downsample(ts.array(bits), list(step), "mode").read().result()
        np.testing.assert_array_equal(downsample_mode(bits, step, binary=True), theirs)
        wide = bits.astype(np.uint16)  # 0/1 labels in a wider type take the same fast path
        np.testing.assert_array_equal(downsample_mode(wide, step, binary=True), theirs)


def test_empty_mask(tmp_path: Path) -> None:
    data = np.zeros((20, 30, 40), np.int8)
    job = make_job(tmp_path, write_zarr(tmp_path / "empty.zarr", data), "SegmentationMask")
    summary = convert(job, PrecomputeConfig())
    assert summary.count == 0 and summary.labels == {} and summary.bounds is None
    assert read_summary(job.summary).labels == {}
    cv = CloudVolume("file://" + str(job.output), progress=False, fill_missing=True)
    assert not cv[:, :, :].any()


def test_float_threshold_and_resample(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data = rng.random((16, 20, 24)).astype(np.float32)
    source = write_zarr(tmp_path / "prob.zarr", data)
    job = make_job(tmp_path, source, "SegmentationMask", size_xyz=(48, 40, 32))
    with pytest.raises(InputError, match="float data"):
        convert(job, PrecomputeConfig(mask_shape_mismatch="resample"))
    with pytest.raises(InputError, match="does not match"):
        convert(job, PrecomputeConfig(mask_threshold=0.5))
    options = PrecomputeConfig(mask_threshold=0.5, mask_shape_mismatch="resample")
    summary = convert(job, options)
    expected = (data > 0.5).repeat(2, 0).repeat(2, 1).repeat(2, 2)
    assert summary.extra["shape"] == [48, 40, 32]
    assert summary.count == int(expected.sum())
    got = CloudVolume("file://" + str(job.output), progress=False, fill_missing=True)[:, :, :][
        ..., 0
    ]
    np.testing.assert_array_equal(got.transpose(2, 1, 0), expected)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("text", "not an OME-Zarr"),
        ("2d", "must be 3-D"),
        ("huge", "labels must be in"),
        ("negative", "labels must be in"),
        ("corrupt", "cannot read"),
        ("missing_mrc", "does not exist"),
        ("bad_mrc", "not a readable MRC"),
    ],
)
def test_bad_input(tmp_path: Path, case: str, message: str) -> None:
    if case == "text":
        source = tmp_path / "notes.txt"
        source.write_text("hello")
    elif case == "2d":
        source = write_zarr(tmp_path / "flat.zarr", np.ones((10, 10), np.uint8))
    elif case == "huge":
        source = write_zarr(tmp_path / "huge.zarr", np.full((4, 4, 4), 2**33, np.int64))
    elif case == "negative":
        source = write_zarr(tmp_path / "neg.zarr", np.full((4, 4, 4), -3, np.int32))
    elif case == "corrupt":
        source = write_zarr(tmp_path / "bad.zarr", np.ones((8, 8, 8), np.uint8), chunks=4)
        (source / "0" / "1" / "1" / "1").write_bytes(b"not a blosc chunk")
    elif case == "missing_mrc":
        source = tmp_path / "gone.mrc"
    else:
        source = tmp_path / "junk.mrc"
        source.write_bytes(b"\0" * 100)
    job = make_job(tmp_path, source, "SegmentationMask")
    with pytest.raises(InputError, match=message) as info:
        convert(job, PrecomputeConfig())
    assert str(source) in str(info.value)
    assert not job.output.exists() and not job.summary.exists()
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True
