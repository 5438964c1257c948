"""The synthetic sample tree, read back with readers we did not write (tensorstore, mrcfile,
json) and checked against the portal's layout and metadata rules."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tensorstore as ts

import cryoet_ng_cli as cli
from cryoet_ng.sample import SampleManifest, generate
from cryoet_ng.sample.spec import AnnotationRecord

ANNOTATION_FIELDS = {
    "annotation_ingest_id", "annotation_object", "annotation_method", "method_type",
    "ground_truth_status", "is_curator_recommended", "annotation_software", "version",
    "object_count", "files", "authors", "dates", "alignment_metadata_path", "deposition_id",
    "last_updated_at",
}  # fmt: skip
TOMOGRAM_FIELDS = {
    "voxel_spacing", "fiducial_alignment_status", "ctf_corrected", "align_software",
    "reconstruction_method", "reconstruction_software", "processing", "processing_software",
    "tomogram_version", "affine_transformation_matrix", "offset", "is_visualization_default",
    "is_standardized", "authors", "dates", "cross_references", "size", "scales", "omezarr_dir",
    "mrc_file", "run_name", "key_photo", "alignment_metadata_path", "neuroglancer_config_path",
    "deposition_id", "last_updated_at",
}  # fmt: skip
SHAPES = {
    "Point", "OrientedPoint", "InstanceSegmentation", "SegmentationMask",
    "InstanceSegmentationMask",
}  # fmt: skip


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _xyz(records: list[dict]) -> np.ndarray:
    return np.array([[r["location"][k] for k in "xyz"] for r in records], dtype=np.float64)


def _open_level(zarr_dir: Path, level: int) -> ts.TensorStore:
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(zarr_dir / str(level))}}
    return ts.open(spec, open=True, read=True).result()


def _pyramid_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    shapes = [tuple(shape)]
    for _ in range(2):
        shapes.append(tuple(-(-n // 2) for n in shapes[-1]))
    return shapes


def _check_omezarr(zarr_dir: Path, shape_zyx: tuple[int, ...], dtype: str, spacing: float):
    """Levels 0-2 open in tensorstore with the right shapes, dtype, codec and NGFF scales."""
    attrs = _read_json(zarr_dir / ".zattrs")["multiscales"][0]
    assert attrs["version"] == "0.4"
    assert [(a["name"], a["type"], a["unit"]) for a in attrs["axes"]] == [
        (k, "space", "angstrom") for k in "zyx"
    ]
    levels = []
    for level, expected in enumerate(_pyramid_shapes(shape_zyx)):
        dataset = attrs["datasets"][level]
        assert dataset["path"] == str(level)
        (transform,) = dataset["coordinateTransformations"]
        assert transform["type"] == "scale"
        assert transform["scale"] == pytest.approx([spacing * 2**level] * 3)
        meta = _read_json(zarr_dir / str(level) / ".zarray")
        assert meta["zarr_format"] == 2 and meta["dimension_separator"] == "/"
        assert meta["compressor"]["id"] == "blosc" and meta["compressor"]["cname"] == "lz4"
        assert all(c <= 256 for c in meta["chunks"])
        store = _open_level(zarr_dir, level)
        assert tuple(store.shape) == expected
        assert store.dtype.numpy_dtype == np.dtype(dtype)
        levels.append(store.read().result())
    return levels, attrs


def _volume_files(ann: AnnotationRecord, fmt: str) -> list:
    return [f for f in ann.files if f.format == fmt]


# --- layout and metadata ------------------------------------------------------------------


def test_manifest_covers_the_requested_cases(sample_manifest: SampleManifest) -> None:
    assert sample_manifest.datasets == ["10000", "10001"]
    assert [(r.dataset_id, r.name) for r in sample_manifest.runs] == [
        ("10000", "TS_026"), ("10000", "TS_027"), ("10001", "TS_100"),
    ]  # fmt: skip
    assert sample_manifest.annotations_of("10000", "TS_027") == []
    shapes = {s for a in sample_manifest.annotations for s in a.shapes}
    assert shapes == SHAPES
    crowded = [a for a in sample_manifest.annotations if a.object_count >= 20_000]
    assert [(a.run_name, a.object_name) for a in crowded] == [("TS_100", "nucleosome")]
    binned = [a for a in sample_manifest.annotations if a.voxel_spacing != 13.48]
    assert [(a.voxel_spacing, a.object_name) for a in binned] == [(26.96, "microtubule")]


def test_every_metadata_file_parses_with_required_fields(
    sample_root: Path, sample_manifest: SampleManifest
) -> None:
    for dataset in sample_manifest.datasets:
        assert _read_json(sample_root / dataset / "dataset_metadata.json")["dataset_identifier"]
    for run in sample_manifest.runs:
        assert (
            _read_json(sample_root / run.dataset_id / run.name / "run_metadata.json")["run_name"]
            == run.name
        )
    for tomo in sample_manifest.tomograms:
        folder = sample_root / Path(tomo.omezarr_dir).parent
        meta = _read_json(folder / "tomogram_metadata.json")
        assert set(meta) >= TOMOGRAM_FIELDS, TOMOGRAM_FIELDS - set(meta)
        x, y, z = tomo.size_xyz
        assert meta["size"] == {"x": x, "y": y, "z": z}
        assert meta["scales"] == [
            {"x": sx, "y": sy, "z": sz} for sz, sy, sx in _pyramid_shapes((z, y, x))
        ]
        assert meta["omezarr_dir"] == tomo.omezarr_dir and (sample_root / tomo.omezarr_dir).is_dir()
        assert meta["is_visualization_default"] is True
        alignment = _read_json(sample_root / meta["alignment_metadata_path"])
        assert alignment["volume_dimension"] == pytest.approx(
            {"x": x * 13.48, "y": y * 13.48, "z": z * 13.48}
        )
        for photo in meta["key_photo"].values():
            assert (sample_root / photo).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scored = 0
    for ann in sample_manifest.annotations:
        meta = _read_json(sample_root / ann.metadata_path)
        assert set(meta) >= ANNOTATION_FIELDS, ANNOTATION_FIELDS - set(meta)
        assert meta["annotation_object"]["name"] and meta["annotation_object"]["id"]
        assert meta["method_type"] in {"manual", "automated", "hybrid", "simulated"}
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", meta["dates"]["deposition_date"])
        assert (sample_root / meta["alignment_metadata_path"]).is_file()
        if "confidence" in meta:  # a prediction scored against a ground truth
            scored += 1
            assert meta["method_type"] == "automated" and not meta["ground_truth_status"]
            assert set(meta["confidence"]) == {"precision", "recall", "ground_truth_used"}
            assert (sample_root / meta["confidence"]["ground_truth_used"]).is_file()
        for entry in meta["files"]:
            assert set(entry) == {"format", "path", "shape", "is_visualization_default"}
            assert entry["shape"] in SHAPES
            assert not entry["path"].startswith(("/", "s3:", "http"))
        # Volumes are always listed twice (zarr + mrc), as the portal does.
        volume_formats = sorted(f["format"] for f in meta["files"] if "Mask" in f["shape"])
        assert volume_formats in ([], ["mrc", "zarr"])
    assert scored == 1


def test_file_names_follow_the_slug_rule(
    sample_root: Path, sample_manifest: SampleManifest
) -> None:
    """<slug>-<version>[_<shape>.<ext>], slug from a short description else the name."""
    for ann in sample_manifest.annotations:
        meta = _read_json(sample_root / ann.metadata_path)
        obj = meta["annotation_object"]
        text = obj.get("description") or ""
        text = text if 0 < len(text) <= 50 else obj["name"]
        stem = re.sub(r"[^0-9a-z]", "_", text.lower()) + "-" + str(meta["version"])
        assert Path(ann.metadata_path).name == f"{stem}.json"
        assert Path(ann.metadata_path).parent.name == ann.annotation_id
        for entry in meta["files"]:
            assert Path(entry["path"]).name == f"{stem}_{entry['shape'].lower()}.{entry['format']}"
    slugs = {a.stem: a.object_name for a in sample_manifest.annotations}
    assert slugs["membrain_seg_prediction-1.0"] == "membrane"


def test_curator_visibility_flags(sample_root: Path, sample_manifest: SampleManifest) -> None:
    flags = {}
    for ann in sample_manifest.annotations_of("10000", "TS_026"):
        meta = _read_json(sample_root / ann.metadata_path)
        for entry in meta["files"]:
            flags[(ann.voxel_spacing, ann.annotation_id, entry["shape"])] = entry[
                "is_visualization_default"
            ]
    ground_truth = _read_json(sample_root / sample_manifest.annotations[0].metadata_path)
    assert ground_truth["ground_truth_status"] is True
    assert flags[(13.48, "100", "Point")] is True  # ribosome ground truth
    assert flags[(13.48, "101", "Point")] is False  # ribosome prediction
    assert flags[(13.48, "104", "SegmentationMask")] is False  # cytoplasm container
    assert flags[(13.48, "105", "SegmentationMask")] is True  # membrane
    assert flags[(13.48, "106", "InstanceSegmentationMask")] is True  # vesicles
    # TS_100 is a run nobody curated: every flag false, the ingestion default.
    for ann in sample_manifest.annotations_of("10001", "TS_100"):
        meta = _read_json(sample_root / ann.metadata_path)
        assert [entry["is_visualization_default"] for entry in meta["files"]] == [False]


# --- volumes ------------------------------------------------------------------------------


def test_tomograms_are_float32_omezarr_pyramids(
    sample_root: Path, sample_manifest: SampleManifest
) -> None:
    assert len(sample_manifest.tomograms) == 3
    for tomo in sample_manifest.tomograms:
        shape = tuple(reversed(tomo.size_xyz))
        levels, _ = _check_omezarr(sample_root / tomo.omezarr_dir, shape, "float32", 13.48)
        # Level 1 is the 2x2x2 mean of level 0 (edge-replicated where an axis is odd).
        l0 = levels[0]
        mean = l0.reshape(shape[0] // 2, 2, shape[1] // 2, 2, shape[2] // 2, 2).mean((1, 3, 5))
        np.testing.assert_allclose(levels[1], mean, atol=1e-5)
        assert 0.5 < float(l0.std()) < 3.0  # noisy, not blank
        with mrcfile.open(sample_root / tomo.mrc_file, permissive=False) as mrc:
            np.testing.assert_array_equal(mrc.data, l0)
            assert float(mrc.voxel_size.x) == pytest.approx(13.48)
            assert float(mrc.header.dmean) == pytest.approx(float(l0.mean()), abs=1e-4)
            assert float(mrc.header.rms) == pytest.approx(float(l0.std()), rel=1e-3)


def test_masks_follow_the_portal_rules(sample_root: Path, sample_manifest: SampleManifest) -> None:
    tomo_shape = tuple(reversed(sample_manifest.tomograms[0].size_xyz))
    masks = [a for a in sample_manifest.annotations if a.volume_shape_zyx is not None]
    assert len(masks) == 4
    for ann in masks:
        (zarr_entry,) = _volume_files(ann, "zarr")
        instance = zarr_entry.shape == "InstanceSegmentationMask"
        expected_shape = (
            tomo_shape if ann.voxel_spacing == 13.48 else _pyramid_shapes(tomo_shape)[1]
        )
        assert ann.volume_shape_zyx == expected_shape
        levels, attrs = _check_omezarr(
            sample_root / zarr_entry.path,
            expected_shape,
            "uint16" if instance else "int8",
            ann.voxel_spacing,
        )
        for fine, coarse in itertools.pairwise(levels):
            if instance:  # nearest neighbour, stride 2
                np.testing.assert_array_equal(coarse, fine[::2, ::2, ::2])
            else:  # 2x2x2 block mean > 0
                padded = np.pad(fine, [(0, n % 2) for n in fine.shape], mode="edge")
                z, y, x = (n // 2 for n in padded.shape)
                blocks = padded.reshape(z, 2, y, 2, x, 2).astype(float).mean((1, 3, 5))
                np.testing.assert_array_equal(coarse, (blocks > 0).astype(np.int8))
        labels = sorted(int(v) for v in np.unique(levels[0]) if v)
        if instance:
            listed = [c["label-value"] for c in attrs["metadata"]["image-label"]["colors"]]
            assert listed == labels == list(range(1, ann.object_count + 1))
        else:
            assert labels == [1] and ann.object_count == 0
        (mrc_entry,) = _volume_files(ann, "mrc")
        with mrcfile.open(sample_root / mrc_entry.path) as mrc:  # test size: every twin written
            np.testing.assert_array_equal(mrc.data, levels[0])
            assert float(mrc.voxel_size.z) == pytest.approx(ann.voxel_spacing)


# --- points -------------------------------------------------------------------------------


def _point_files(sample_root: Path, manifest: SampleManifest):
    for ann in manifest.annotations:
        tomo = next(t for t in manifest.tomograms if t.run_name == ann.run_name)
        size = np.array(tomo.size_xyz)
        if ann.voxel_spacing != tomo.voxel_spacing:
            size = -(-size // 2)
        for entry in _volume_files(ann, "ndjson"):
            yield ann, entry, _records(sample_root / entry.path), size


def test_points_are_valid_and_in_bounds(sample_root: Path, sample_manifest: SampleManifest) -> None:
    seen = set()
    for ann, entry, records, size in _point_files(sample_root, sample_manifest):
        seen.add(entry.shape)
        xyz = _xyz(records)
        assert len(xyz) > 0 and np.all(np.isfinite(xyz))
        assert np.all(xyz >= 0) and np.all(xyz <= size - 1), ann.metadata_path
        kind = {"Point": "point", "OrientedPoint": "orientedPoint"}
        assert {r["type"] for r in records} == {kind.get(entry.shape, "instancePoint")}
        if entry.shape == "InstanceSegmentation":
            ids = {r["instance_id"] for r in records}
            assert len(ids) >= 3 and ann.object_count == len(ids)
        elif ann.files[0].shape == entry.shape:
            assert ann.object_count == len(records)
        if entry.shape == "OrientedPoint":
            rot = np.array([r["xyz_rotation_matrix"] for r in records])
            np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-5)
            eye = np.broadcast_to(np.eye(3), rot.shape)
            np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), eye, atol=1e-5)
    assert seen == {"Point", "OrientedPoint", "InstanceSegmentation"}


def _tomogram(sample_root: Path, manifest: SampleManifest, run: str, level: int = 0):
    tomo = next(t for t in manifest.tomograms if t.run_name == run)
    return _open_level(sample_root / tomo.omezarr_dir, level).read().result()


def _at(volume: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    i = np.round(xyz).astype(int)
    return volume[i[:, 2], i[:, 1], i[:, 0]]


def _annotation(manifest: SampleManifest, run: str, spacing: float, ann_id: str):
    return next(
        a
        for a in manifest.annotations
        if (a.run_name, a.voxel_spacing, a.annotation_id) == (run, spacing, ann_id)
    )


def test_annotations_mark_what_the_tomogram_shows(
    sample_root: Path, sample_manifest: SampleManifest
) -> None:
    """Ribosome picks sit on dense (dark) blobs inside the cytoplasm mask; the vesicle
    points lie in their own label; the binned microtubule mask covers dark voxels."""
    volume = _tomogram(sample_root, sample_manifest, "TS_026")
    ann = {
        a.annotation_id: a
        for a in sample_manifest.annotations_of("10000", "TS_026")
        if a.voxel_spacing == 13.48
    }
    ribosomes = _xyz(_records(sample_root / ann["100"].files[0].path))
    cytoplasm = _open_level(sample_root / ann["104"].files[0].path, 0).read().result()
    background = volume[cytoplasm.astype(bool)]
    assert _at(volume, ribosomes).mean() < background.mean() - 1.0
    assert np.all(_at(cytoplasm, ribosomes) == 1)
    membrane = _open_level(sample_root / ann["105"].files[0].path, 0).read().result()
    assert volume[membrane.astype(bool)].mean() < background.mean() - 0.3
    labels = _open_level(sample_root / ann["106"].files[0].path, 0).read().result()
    centres = _xyz(_records(sample_root / _volume_files(ann["106"], "ndjson")[0].path))
    np.testing.assert_array_equal(_at(labels, centres), np.arange(1, len(centres) + 1))

    binned = _annotation(sample_manifest, "TS_026", 26.96, "100")
    tube = _open_level(sample_root / binned.files[0].path, 0).read().result().astype(bool)
    level1 = _tomogram(sample_root, sample_manifest, "TS_026", level=1)
    assert tube.shape == level1.shape and tube.sum() > 50
    inside_cell = _open_level(sample_root / ann["104"].files[0].path, 1).read().result() > 0
    assert level1[tube].mean() < level1[inside_cell & ~tube].mean() - 0.3


def test_prediction_confidence_matches_its_points(
    sample_root: Path, sample_manifest: SampleManifest
) -> None:
    truth_ann = _annotation(sample_manifest, "TS_026", 13.48, "100")
    pred_ann = _annotation(sample_manifest, "TS_026", 13.48, "101")
    truth = _xyz(_records(sample_root / truth_ann.files[0].path))
    pred = _xyz(_records(sample_root / pred_ann.files[0].path))
    meta = _read_json(sample_root / pred_ann.metadata_path)
    assert meta["confidence"]["ground_truth_used"] == truth_ann.files[0].path
    distance = np.linalg.norm(pred[:, None] - truth[None], axis=2)
    hits = int(np.sum(distance.min(axis=1) < 4))
    assert hits < len(pred)  # some false positives
    assert meta["confidence"]["precision"] == pytest.approx(100 * hits / len(pred), abs=0.01)
    recalled = int(np.sum(distance.min(axis=0) < 4))
    assert meta["confidence"]["recall"] == pytest.approx(100 * recalled / len(truth), abs=0.01)


# --- determinism and CLI ------------------------------------------------------------------


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    first = tmp_path / "a"
    assert cli.main(["sample", str(first), "--seed", "7"]) == 0
    second = generate(tmp_path / "b", seed=7)
    a, b = _tree_bytes(first), _tree_bytes(tmp_path / "b")
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    other = generate(tmp_path / "c", seed=8)
    c = _tree_bytes(tmp_path / "c")
    tomogram_chunk = f"{second.tomograms[0].omezarr_dir}/0/0/0/0"
    assert a[tomogram_chunk] != c[tomogram_chunk]
    assert other.annotations_of("10000", "TS_026") != second.annotations_of("10000", "TS_026")


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing"):
        generate(tmp_path, seed=0)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
