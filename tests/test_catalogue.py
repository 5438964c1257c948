"""Catalogue.scan on the generated tree (must list exactly what was written), on a
damaged copy (warnings naming paths, never a crash) and on an old-layout mini tree."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.layout import output_name
from cryoet_ng.sample import SampleManifest

VS = "Reconstructions/VoxelSpacing13.480"


def test_catalogue_lists_exactly_what_was_generated(
    sample_root: Path, sample_manifest: SampleManifest
) -> None:
    cat = Catalogue.scan(sample_root)
    assert cat.warnings == []
    assert sorted(cat.datasets) == sorted(sample_manifest.datasets)
    assert sorted((r.dataset_id, r.name) for r in cat.runs()) == sorted(
        (r.dataset_id, r.name) for r in sample_manifest.runs
    )
    for record in sample_manifest.tomograms:
        run = cat.run(record.dataset_id, record.run_name)
        assert run is not None and [t.id for t in run.tomograms] == [record.tomogram_id]
        tomo = run.default_tomogram()
        assert tomo is not None and tomo.id == record.tomogram_id
        assert tomo.size_xyz == record.size_xyz
        assert tomo.voxel_spacing == pytest.approx(record.voxel_spacing)
        assert tomo.omezarr_relative == record.omezarr_dir
        assert tomo.omezarr_path == (sample_root / record.omezarr_dir).resolve()
        assert tomo.is_visualization_default is record.is_visualization_default
        assert tomo.alignment_metadata_path == record.alignment_metadata_path
        assert (tomo.mrc_path is not None) == (record.mrc_file is not None)

    listed = {
        (r.dataset_id, r.name, a.voxel_spacing, a.id): a for r in cat.runs() for a in r.annotations
    }
    expected = {
        (a.dataset_id, a.run_name, a.voxel_spacing, a.annotation_id): a
        for a in sample_manifest.annotations
    }
    assert sorted(listed) == sorted(expected)
    for key, record in expected.items():
        ann = listed[key]
        assert ann.stem == record.stem
        assert ann.object_name == record.object_name
        assert ann.metadata_path == (sample_root / record.metadata_path).resolve()
        got = [(f.shape, f.format, f.relative_path, f.is_visualization_default) for f in ann.files]
        want = [(f.shape, f.format, f.path, f.is_visualization_default) for f in record.files]
        assert got == want
        assert all(f.path.exists() for f in ann.files)
    # Every annotation of the run belongs to its tomogram's alignment (incl. the binned one).
    run = cat.run("10000", "TS_026")
    assert run is not None and {a.voxel_spacing for a in run.annotations} == {13.48, 26.96}
    assert len(run.annotations_for(run.tomograms[0])) == len(run.annotations)
    binned = run.spacing_dir(26.96)
    assert binned is not None and binned.tomograms == {}
    microtubule = binned.annotations["100"]
    assert output_name(microtubule, "SegmentationMask") == "100-microtubule-1.0_segmentationmask"


def _edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.fixture
def broken_tree(copy_sample: Callable[[Path], Path], tmp_path: Path) -> Path:
    return copy_sample(tmp_path / "broken")


def test_damaged_tree_gives_warnings_not_crashes(broken_tree: Path, tmp_path: Path) -> None:
    root = broken_tree
    ann = root / "10000/TS_026" / VS / "Annotations"
    # 1. A run without tomograms.
    shutil.rmtree(root / "10000/TS_027" / VS / "Tomograms")
    # 2. An annotation folder without its metadata file (an interrupted write).
    (ann / "103" / "membrane-1.0.json").unlink()
    # 3. A metadata file that is not valid JSON.
    (ann / "104" / "cytoplasm-1.0.json").write_text('{"annotation_object": ')
    # 4. A files[] path escaping the root, and one escaping through a symlink.
    outside = tmp_path / "outside.ndjson"
    outside.write_text('{"type": "point", "location": {"x": 1, "y": 1, "z": 1}}\n')
    os.symlink(outside, ann / "100" / "link.ndjson")

    def escape(doc: dict) -> None:
        doc["files"][0]["path"] = "10000/../../outside.ndjson"
        doc["files"].append(
            dict(doc["files"][1], path=f"10000/TS_026/{VS}/Annotations/100/link.ndjson")
        )

    _edit_json(ann / "105" / "membrain_seg_prediction-1.0.json", escape)
    # 5. A tomogram whose metadata has a nonsense voxel spacing.
    tomo_meta = root / "10001/TS_100" / VS / "Tomograms/100/tomogram_metadata.json"
    _edit_json(tomo_meta, lambda doc: doc.update(voxel_spacing=None))

    cat = Catalogue.scan(root)
    messages = {str(w.path): w.message for w in cat.warnings}
    resolved = root.resolve()
    run_027 = cat.run("10000", "TS_027")
    assert run_027 is not None and run_027.tomograms == []
    assert "no tomogram" in messages[str(resolved / "10000/TS_027")]
    assert "without metadata" in messages[str(resolved / "10000/TS_026" / VS / "Annotations/103")]
    assert (
        "not valid JSON"
        in messages[str(resolved / "10000/TS_026" / VS / "Annotations/104/cytoplasm-1.0.json")]
    )
    membrain = str(
        resolved / "10000/TS_026" / VS / "Annotations/105/membrain_seg_prediction-1.0.json"
    )
    escapes = [w for w in cat.warnings if str(w.path) == membrain]
    assert len(escapes) == 2 and all("leaves the data root" in w.message for w in escapes)
    assert any(str(w.path) == str(tomo_meta.resolve()) for w in cat.warnings)

    run = cat.run("10000", "TS_026")
    assert run is not None
    ids = sorted(a.id for a in run.annotations if a.voxel_spacing == 13.48)
    assert ids == ["100", "101", "102", "105", "106"]
    membrane = next(a for a in run.annotations if a.id == "105")
    assert [(f.shape, f.format) for f in membrane.files] == [("SegmentationMask", "mrc")]
    tomo = cat.run("10001", "TS_100").tomograms[0]
    assert tomo.voxel_spacing == pytest.approx(13.48)  # the folder's spacing instead


def test_scan_of_missing_root_warns(tmp_path: Path) -> None:
    cat = Catalogue.scan(tmp_path / "nowhere")
    assert cat.datasets == {} and "not a directory" in cat.warnings[0].message


def test_legacy_layout_mini_tree(
    sample_root: Path, sample_manifest: SampleManifest, tmp_path: Path
) -> None:
    """Tomograms/VoxelSpacing13.480/{CanonicalTomogram, Annotations/<id>-<slug>-<ver>.json}."""
    root = tmp_path / "legacy"
    vs_dir = root / "10000/TS_026/Tomograms/VoxelSpacing13.480"
    canonical = vs_dir / "CanonicalTomogram"
    record = sample_manifest.tomograms[0]
    shutil.copytree(sample_root / record.omezarr_dir, canonical / "TS_026.zarr")
    meta = json.loads(
        (sample_root / Path(record.omezarr_dir).parent / "tomogram_metadata.json").read_text()
    )
    for key in ("omezarr_dir", "mrc_file", "alignment_metadata_path"):
        meta.pop(key)  # the old layout had no such links; the zarr is found by globbing
    (canonical / "tomogram_metadata.json").write_text(json.dumps(meta))
    annotations = vs_dir / "Annotations"
    annotations.mkdir()
    rel = "10000/TS_026/Tomograms/VoxelSpacing13.480/Annotations"
    points = annotations / "100-cytosolic_ribosome-1.0_point.ndjson"
    points.write_text('{"type": "point", "location": {"x": 3, "y": 4, "z": 5}}\n')
    (annotations / "100-cytosolic_ribosome-1.0.json").write_text(
        json.dumps(
            {
                "annotation_object": {"id": "GO:0022626", "name": "cytosolic ribosome"},
                "version": 1.0,
                "files": [
                    {
                        "format": "ndjson",
                        "shape": "Point",
                        "path": f"{rel}/{points.name}",
                        "is_visualization_default": True,
                    }
                ],
            }
        )
    )
    (annotations / "100-cytosolic_ribosome-1.0_globalcaption.json").write_text("{}")

    cat = Catalogue.scan(root)
    assert cat.warnings == []
    run = cat.run("10000", "TS_026")
    assert run is not None
    (vs,) = run.spacings.values()
    assert vs.legacy and vs.spacing == pytest.approx(13.48)
    tomo = run.default_tomogram()
    assert tomo is not None and tomo.id == "canonical"
    assert tomo.omezarr_path == (canonical / "TS_026.zarr").resolve()
    assert tomo.size_xyz == record.size_xyz
    (ann,) = run.annotations
    assert (ann.id, ann.stem, ann.object_name) == (
        "100",
        "cytosolic_ribosome-1.0",
        "cytosolic ribosome",
    )
    assert output_name(ann, "Point") == "100-cytosolic_ribosome-1.0_point"
    assert [f.path for f in ann.files] == [points.resolve()]
    assert run.annotations_for(tomo) == [ann]
