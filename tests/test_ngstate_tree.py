"""A metadata-only portal-layout tree with stand-in outputs and summaries, for ngstate tests.

:class:`Tree` describes the run an ngstate test needs (annotations with their flags and
summaries); :meth:`Tree.build` writes it with the project's one tree builder
(:class:`cryoet_ng.sample.builder.TreeBuilder`) and :mod:`cryoet_ng.sample.outputs`.
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

from cryoet_ng.catalogue import POINT_SHAPES, Catalogue
from cryoet_ng.config import LayerStyle, SelectionConfig
from cryoet_ng.sample.annotations import AnnotationObject, Source, annotation_spec
from cryoet_ng.sample.builder import TreeBuilder
from cryoet_ng.sample.outputs import annotation_info, write_output, write_tomogram_stats
from cryoet_ng.summaries import Grid, Occupancy, Summary
from ngstate import StateOptions

DATA_URL = "http://127.0.0.1:8000/data"
# Metadata-only annotations have no data to count; ngstate reads object_count.
OBJECT_COUNT = {"object_count": 3}


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
        """Write the tree (metadata only, a header-only OME-Zarr unless ``zarr`` is false) and
        the outputs: tomogram statistics, and per annotation an ``info`` and its summary."""
        tree = TreeBuilder(self.data)
        tree.dataset(self.dataset)
        written = tree.run(self.dataset, self.run, self.size, self.spacing)
        tree.tomogram(written, omezarr=self.zarr)
        for a in self.annotations:
            spec = annotation_spec(
                AnnotationObject(a.object_id, a.name, a.description, diameter=a.diameter),
                Source(a.shape, a.flag),
                method_type=a.method,
                ground_truth=a.gt,
                curator_recommended=a.curator,
                version=a.version,
            )
            tree.annotation(
                written, spec, voxel_spacing=a.spacing, annotation_id=a.id, metadata=OBJECT_COUNT
            )
        catalogue = Catalogue.scan(self.data)
        run = catalogue.run(self.dataset, self.run)
        assert run is not None and run.tomograms, catalogue.warnings
        if self.stats is not None:
            write_tomogram_stats(self.out, run, run.tomograms[0], self.stats)
        for a in self.annotations:
            spacing = a.spacing or self.spacing
            annotation = run.spacing_dir(spacing).annotations[a.id]  # type: ignore[union-attr]
            if a.output:
                info = annotation_info(a.shape) if a.shape in POINT_SHAPES else None
                write_output(self.out, run, annotation, a.shape, info=info, summary=a.summary)
        return catalogue

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
