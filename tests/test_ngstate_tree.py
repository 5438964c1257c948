"""A hand-built portal-layout tree with precompute outputs and summaries, for ngstate tests.

Other ngstate test modules import :class:`Tree` and :func:`assert_roundtrip` from here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neuroglancer
import numpy as np

from cryoet_ng import layout
from cryoet_ng.catalogue import Catalogue, annotation_stem, voxel_spacing_dirname
from cryoet_ng.config import LayerStyle, SelectionConfig
from cryoet_ng.summaries import Grid, Occupancy, Summary
from ngstate import StateOptions

DATA_URL = "http://127.0.0.1:8000/data"


@dataclass
class Ann:
    id: str
    name: str
    shape: str = "Point"
    spacing: float | None = None  # None = the tomogram's
    gt: bool = False
    curator: bool = False
    method: str = "manual"
    version: float = 1.0
    object_id: str | None = None
    description: str | None = None
    flag: bool | None = None
    output: bool = True
    summary: Summary | None = None
    diameter: float | None = None  # annotation_object.diameter, Å


@dataclass
class Tree:
    root: Path
    dataset: str = "10000"
    run: str = "TS_026"
    spacing: float = 13.48
    size: tuple[int, int, int] = (64, 64, 32)
    zarr: bool = True
    stats: dict[str, Any] | None = field(
        default_factory=lambda: {"contrast_2d": [-1.5, 2.5], "contrast_3d": [0.0, 3.0]}
    )
    annotations: list[Ann] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def add(self, *anns: Ann) -> Tree:
        self.annotations.extend(anns)
        return self

    # -- summaries ---------------------------------------------------------------------------
    def grid(self, cells: int = 16, spacing: float | None = None) -> Grid:
        vs = self.spacing if spacing is None else spacing
        ratio = self.spacing / vs
        extent = tuple(s * ratio * vs * 1e-10 for s in self.size)
        return Grid.for_extent(extent, cells)  # type: ignore[arg-type]

    def points(self, xyz_voxels: np.ndarray, spacing: float | None = None) -> Summary:
        """Summary of points given in voxels at ``spacing`` (default: the tomogram's)."""
        vs = self.spacing if spacing is None else spacing
        xyz_m = np.asarray(xyz_voxels, dtype=float) * vs * 1e-10
        occ = Occupancy.of_points(self.grid(), xyz_m)
        return Summary(
            "annotation", len(xyz_m), (xyz_m.min(0).tolist(), xyz_m.max(0).tolist()), occ
        )

    def mask(
        self,
        fractions_zyx: np.ndarray,
        labels: dict[int, int] | None = None,
        grid: Grid | None = None,
    ) -> Summary:
        """Summary of a mask from per-cell fractions indexed [z, y, x] on ``grid``."""
        grid = grid or self.grid()
        values = np.asarray(fractions_zyx, dtype=float)
        assert values.shape == grid.shape[::-1], (values.shape, grid.shape)
        occ = Occupancy(grid, "fraction", values.ravel())
        voxels = int(values.sum() * (grid.cell_size / (self.spacing * 1e-10)) ** 3)
        return Summary("segmentation", voxels, None, occ, labels or {1: max(voxels, 1)})

    def empty_cells(self, grid: Grid | None = None) -> np.ndarray:
        return np.zeros((grid or self.grid()).shape[::-1])

    # -- writing -----------------------------------------------------------------------------
    def build(self) -> Catalogue:
        run_dir = self.data / self.dataset / self.run
        vs_dir = run_dir / "Reconstructions" / voxel_spacing_dirname(self.spacing)
        tomo_dir = vs_dir / "Tomograms" / "100"
        tomo_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run_metadata.json").write_text(json.dumps({"run_name": self.run}))
        meta: dict[str, Any] = {
            "voxel_spacing": self.spacing,
            "size": dict(zip("xyz", self.size, strict=True)),
            "is_visualization_default": True,
            "alignment_metadata_path": f"{self.dataset}/{self.run}/Alignments/100/a.json",
        }
        if self.zarr:
            (tomo_dir / f"{self.run}.zarr").mkdir(exist_ok=True)
            meta["omezarr_dir"] = (
                f"{self.dataset}/{self.run}/{tomo_dir.relative_to(run_dir)}/{self.run}.zarr"
            )
        (tomo_dir / "tomogram_metadata.json").write_text(json.dumps(meta))
        for a in self.annotations:
            self._write_annotation(run_dir, a)
        catalogue = Catalogue.scan(self.data)
        run = catalogue.run(self.dataset, self.run)
        assert run is not None and run.tomograms, catalogue.warnings
        tomogram = run.tomograms[0]
        if self.stats is not None:
            Summary("tomogram", extra={"stats": self.stats}).write(
                layout.tomogram_summary(self.out, run, tomogram)
            )
        for a in self.annotations:
            spacing = a.spacing or self.spacing
            annotation = run.spacing_dir(spacing).annotations[a.id]  # type: ignore[union-attr]
            output = layout.annotation_output(self.out, run, annotation, a.shape)
            if not a.output:
                continue
            output.mkdir(parents=True, exist_ok=True)
            if a.shape in ("Point", "OrientedPoint", "InstanceSegmentation"):
                props = [{"id": "diameter", "type": "float32"}]
                props += (
                    [{"id": "line_color", "type": "rgb"}]
                    if a.shape == "OrientedPoint"
                    else [{"id": "color", "type": "rgb"}]
                )
                (output / "info").write_text(json.dumps({"properties": props}))
            if a.summary is not None:
                a.summary.write(layout.annotation_summary(self.out, run, annotation, a.shape))
        return catalogue

    def _write_annotation(self, run_dir: Path, a: Ann) -> None:
        spacing = a.spacing or self.spacing
        vs_dir = run_dir / "Reconstructions" / voxel_spacing_dirname(spacing)
        obj: dict[str, Any] = {"name": a.name}
        if a.object_id:
            obj["id"] = a.object_id
        if a.description:
            obj["description"] = a.description
        if a.diameter:
            obj["diameter"] = a.diameter
        meta: dict[str, Any] = {
            "annotation_object": obj,
            "method_type": a.method,
            "ground_truth_status": a.gt,
            "is_curator_recommended": a.curator,
            "version": a.version,
            "object_count": 3,
            "alignment_metadata_path": f"{self.dataset}/{self.run}/Alignments/100/a.json",
        }
        stem = annotation_stem(meta)
        adir = vs_dir / "Annotations" / a.id
        adir.mkdir(parents=True, exist_ok=True)
        rel = f"{self.dataset}/{self.run}/{adir.relative_to(run_dir)}/{stem}_{a.shape.lower()}"
        entry: dict[str, Any] = {"shape": a.shape, "path": rel}
        if a.flag is not None:
            entry["is_visualization_default"] = a.flag
        if a.shape in ("SegmentationMask", "InstanceSegmentationMask"):
            files = [
                dict(entry, format="zarr", path=rel + ".zarr"),
                dict(entry, format="mrc", path=rel + ".mrc"),
            ]
        else:
            files = [dict(entry, format="ndjson", path=rel + ".ndjson")]
        meta["files"] = files
        (adir / f"{stem}.json").write_text(json.dumps(meta))

    def options(self, **selection: Any) -> StateOptions:
        return StateOptions(
            data_url=DATA_URL,
            out_root=self.out,
            data_root=self.data,
            style=LayerStyle(),
            selection=SelectionConfig(**selection),
        )


def _same(ours: Any, theirs: Any, where: str) -> None:
    if isinstance(ours, dict):
        assert isinstance(theirs, dict), where
        for key, value in ours.items():
            assert key in theirs, f"{where}.{key} dropped by neuroglancer"
            _same(value, theirs[key], f"{where}.{key}")
    elif isinstance(ours, list | tuple):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(ours, float) and not isinstance(ours, bool):
        assert math.isclose(ours, float(theirs), rel_tol=1e-6, abs_tol=1e-12), where
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def assert_roundtrip(state: dict[str, Any]) -> None:
    """Neuroglancer's ViewerState parses the state and writes back every key we set."""
    parsed = neuroglancer.ViewerState(json.loads(json.dumps(state)))
    _same(state, parsed.to_json(), "state")
    # Layer objects are typed by neuroglancer (not generic fallbacks).
    kinds = {
        "image": neuroglancer.ImageLayer,
        "annotation": neuroglancer.AnnotationLayer,
        "segmentation": neuroglancer.SegmentationLayer,
    }
    for layer in parsed.layers:
        assert isinstance(layer.layer, kinds[layer.type]), layer.name


def test_tree_is_read_by_the_catalogue(tmp_path: Path) -> None:
    tree = Tree(tmp_path).add(
        Ann("101", "cytosolic ribosome"), Ann("102", "cytoplasm", "SegmentationMask")
    )
    catalogue = tree.build()
    run = catalogue.run("10000", "TS_026")
    assert run is not None
    assert sorted(a.id for a in run.annotations) == ["101", "102"]
    assert not catalogue.warnings
