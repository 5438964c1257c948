"""TreeBuilder and the stand-in outputs, read back by the catalogue, tensorstore and ngstate's
own summary reader (the sample tree written through the builder is checked in test_sample.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.sample.annotations import AnnotationObject, Source, annotation_spec
from cryoet_ng.sample.builder import TreeBuilder
from cryoet_ng.sample.omezarr import Pyramid, downsample_any
from cryoet_ng.sample.outputs import (
    annotation_info,
    fill_missing_outputs,
    write_output,
    write_tomogram_stats,
)
from cryoet_ng.summaries import Summary, read_summary

SIZE = (24, 20, 16)  # x, y, z voxels
RIBOSOME = AnnotationObject("GO:0022626", "cytosolic ribosome")


def _run(root: Path):
    tree = TreeBuilder(root)
    tree.dataset("10000")
    return tree, tree.run("10000", "TS_001", SIZE, 10.0)


def test_data_tree_reads_back(tmp_path: Path) -> None:
    tree, run = _run(tmp_path)
    rng = np.random.default_rng(0)
    volume = rng.normal(size=SIZE[::-1]).astype(np.float32)
    tomogram = tree.tomogram(run, volume)
    points = rng.uniform(0, 15, (5, 3)).round(2)
    first = tree.annotation(run, annotation_spec(RIBOSOME, Source("Point", True, points=points)))
    mask = np.zeros((8, 10, 12), np.uint8)  # 2x binned z, y, x
    mask[2:5, 3:6, 4:8] = 1
    binned = tree.annotation(
        run,
        annotation_spec(
            AnnotationObject("GO:0005874", "microtubule"),
            Source("SegmentationMask", False, pyramid=Pyramid.build(mask, 20.0, downsample_any)),
        ),
        voxel_spacing=20.0,
    )
    second = tree.annotation(run, annotation_spec(RIBOSOME, Source("Point", False, points=points)))

    catalogue = Catalogue.scan(tmp_path)
    assert catalogue.warnings == []
    found = catalogue.run("10000", "TS_001")
    assert found is not None
    (tomo,) = found.tomograms
    assert tomo.size_xyz == SIZE and tomo.omezarr_relative == tomogram.omezarr_dir
    assert tomo.mrc_path is not None
    level0 = ts.open({"driver": "zarr", "kvstore": f"file://{tomo.omezarr_path}/0"}).result()
    np.testing.assert_array_equal(level0.read().result(), volume)
    # Ids from 100 per spacing folder, in call order; the binned mask sits in its own folder.
    assert (first.annotation_id, second.annotation_id, binned.annotation_id) == (
        "100",
        "101",
        "100",
    )
    assert [(a.voxel_spacing, a.id) for a in found.annotations_for(tomo)] == [
        (10.0, "100"),
        (10.0, "101"),
        (20.0, "100"),
    ]
    assert binned.volume_shape_zyx == mask.shape
    assert all(f.path.exists() for a in found.annotations for f in a.files)
    lines = (tmp_path / first.files[0].path).read_text().splitlines()
    assert [json.loads(x)["location"]["x"] for x in lines] == points[:, 0].tolist()


def test_metadata_only_tree(tmp_path: Path) -> None:
    tree, run = _run(tmp_path)
    record = tree.tomogram(run, metadata={"is_visualization_default": False})
    tree.annotation(
        run,
        annotation_spec(AnnotationObject(None, "vesicle"), Source("SegmentationMask", None)),
        annotation_id="7",
        metadata={"object_count": 3},
    )
    catalogue = Catalogue.scan(tmp_path)
    found = catalogue.run("10000", "TS_001")
    assert found is not None and catalogue.warnings == []
    (tomo,) = found.tomograms
    # A header-only OME-Zarr: the image is linked, no voxels are written.
    assert tomo.omezarr_path is not None and sorted(
        p.name for p in tomo.omezarr_path.iterdir()
    ) == [
        ".zattrs",
        ".zgroup",
    ]
    assert tomo.mrc_path is None and record.mrc_file is None
    assert tomo.is_visualization_default is record.is_visualization_default is False
    (ann,) = found.annotations
    assert ann.id == "7" and ann.object_id is None and ann.metadata["object_count"] == 3
    assert [(f.format, f.is_visualization_default, f.path.exists()) for f in ann.files] == [
        ("zarr", None, False),
        ("mrc", None, False),
    ]
    assert "is_visualization_default" not in ann.metadata["files"][0]


def test_without_omezarr_the_catalogue_says_so(tmp_path: Path) -> None:
    tree, run = _run(tmp_path)
    tree.tomogram(run, omezarr=False)
    catalogue = Catalogue.scan(tmp_path)
    assert [w.message for w in catalogue.warnings] == ["tomogram has no OME-Zarr"]


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    tree, run = _run(tmp_path)
    with pytest.raises(ValueError, match="volume"):
        tree.tomogram(run, np.zeros((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match="not a binning"):
        tree.annotation(run, annotation_spec(RIBOSOME, Source("Point", True)), voxel_spacing=15.0)
    with pytest.raises(ValueError, match="annotation_object"):
        tree.annotation(
            run,
            annotation_spec(RIBOSOME, Source("Point", True)),
            metadata={"annotation_object": {"name": "x"}},
        )
    outside = np.array([[0.0, 0.0, SIZE[2]]])  # z = size is one past the last voxel
    with pytest.raises(ValueError, match="leaves"):
        tree.annotation(run, annotation_spec(RIBOSOME, Source("Point", True, points=outside)))


def test_stand_in_outputs(tmp_path: Path) -> None:
    tree, run = _run(tmp_path)
    tree.tomogram(run)
    for shape in ("Point", "OrientedPoint", "SegmentationMask"):
        tree.annotation(run, annotation_spec(RIBOSOME, Source(shape, True)))
    found = Catalogue.scan(tmp_path).run("10000", "TS_001")
    assert found is not None
    out = tmp_path / "out"
    point = found.annotations[0]
    summary = Summary("annotation", 5)
    written = write_output(
        out, found, point, "Point", info=annotation_info("Point"), summary=summary
    )
    assert json.loads((written / "info").read_text())["properties"][1]["id"] == "color"
    read = read_summary(written.with_name(written.name + ".summary.json"))  # README's name
    assert read is not None and read.count == 5
    assert fill_missing_outputs(out, found, {"placeholder": True}, {"a/b": b"x"}) == 2
    assert fill_missing_outputs(out, found, {"placeholder": True}) == 0
    (output,) = [p for p in written.parent.iterdir() if p.name.endswith("_orientedpoint")]
    assert (output / "a" / "b").read_bytes() == b"x"
    assert annotation_info("OrientedPoint")["properties"][1]["id"] == "line_color"
    stats = write_tomogram_stats(out, found, found.tomograms[0], {"contrast_2d": [0, 1]})
    tomogram_summary = read_summary(stats)
    assert tomogram_summary is not None
    assert tomogram_summary.extra["stats"] == {"contrast_2d": [0, 1]}
