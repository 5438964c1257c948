"""Units of precompute work, discovered from the catalogue.

A job carries everything its converter needs, so converters never see the
catalogue: a point or mask converter gets an :class:`AnnotationJob`, the tomogram
statistics get a :class:`TomogramJob`. Jobs are plain frozen dataclasses, so they
pickle cleanly to Dask workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryoet_ng import layout
from cryoet_ng.catalogue import (
    POINT_SHAPES,
    VOLUME_SHAPES,
    Annotation,
    Catalogue,
    Run,
    Tomogram,
)
from cryoet_ng.particles import metadata_diameter, table_diameter
from cryoet_ng.summaries import summary_path

ANGSTROM = 1e-10


@dataclass(frozen=True)
class AnnotationJob:
    """Convert one (annotation, shape) file into one precomputed output folder."""

    source: Path  # ndjson file, OME-Zarr folder or MRC file
    shape: str  # portal shape, e.g. "OrientedPoint"
    output: Path  # final output folder; its summary is summary_path(output)
    annotation_id: str
    object_name: str
    voxel_spacing: float  # Å per voxel of the input coordinates / volume
    # Tomogram size in voxels at this spacing (bounds checks, expected mask shape); None if unknown.
    volume_size_xyz: tuple[int, int, int] | None = None
    # Physical extent of the tomogram in metres (x, y, z): the summary's occupancy grid.
    extent_m: tuple[float, float, float] | None = None
    diameter_angstrom: float | None = None
    dataset_id: str = ""
    run_name: str = ""

    @property
    def summary(self) -> Path:
        return summary_path(self.output)

    @property
    def name(self) -> str:
        return f"{self.dataset_id}/{self.run_name}/{self.output.name}"


@dataclass(frozen=True)
class TomogramJob:
    """Compute the image-layer statistics of one tomogram into its summary JSON."""

    source: Path  # OME-Zarr folder
    summary: Path
    tomogram_id: str
    voxel_spacing: float
    mrc: Path | None = None
    dataset_id: str = ""
    run_name: str = ""

    @property
    def name(self) -> str:
        return f"{self.dataset_id}/{self.run_name}/tomogram {self.tomogram_id}"


Job = AnnotationJob | TomogramJob


def discover(catalogue: Catalogue, out_root: Path, runs: list[str] | None = None) -> Iterator[Job]:
    """Every job of the tree, in a stable order (dataset, run, spacing, id, shape)."""
    for run in catalogue.runs():
        if runs and run.name not in runs:
            continue
        yield from run_jobs(run, out_root)


def run_jobs(run: Run, out_root: Path) -> Iterator[Job]:
    for tomogram in sorted(run.tomograms, key=lambda t: t.id):
        if tomogram.omezarr_path is not None:
            yield TomogramJob(
                source=tomogram.omezarr_path,
                summary=layout.tomogram_summary(out_root, run, tomogram),
                tomogram_id=tomogram.id,
                voxel_spacing=tomogram.voxel_spacing,
                mrc=tomogram.mrc_path,
                dataset_id=run.dataset_id,
                run_name=run.name,
            )
    for annotation in run.annotations:
        reference = _reference_tomogram(run, annotation)
        for shape, source in _sources(annotation):
            yield AnnotationJob(
                source=source,
                shape=shape,
                output=layout.annotation_output(out_root, run, annotation, shape),
                annotation_id=annotation.id,
                object_name=annotation.object_name,
                voxel_spacing=annotation.voxel_spacing,
                volume_size_xyz=_size_at(reference, annotation.voxel_spacing),
                extent_m=_extent(reference),
                diameter_angstrom=_diameter(annotation),
                dataset_id=run.dataset_id,
                run_name=run.name,
            )


def _sources(annotation: Annotation) -> Iterator[tuple[str, Path]]:
    """(shape, input) per precomputable shape: ndjson for points, zarr (else mrc) for masks."""
    seen: set[str] = set()
    for f in annotation.files:
        if f.shape in POINT_SHAPES and f.format == "ndjson" and f.shape not in seen:
            seen.add(f.shape)
            yield f.shape, f.path
    for shape in VOLUME_SHAPES:
        entries = [f for f in annotation.files if f.shape == shape]
        zarr = next((f for f in entries if f.format == "zarr"), None)
        mrc = next((f for f in entries if f.format == "mrc"), None)
        chosen = zarr if zarr is not None and (zarr.path.exists() or mrc is None) else mrc
        if chosen is not None:
            yield shape, chosen.path


def _reference_tomogram(run: Run, annotation: Annotation) -> Tomogram | None:
    """The tomogram of the annotation's alignment, preferring the same voxel spacing."""
    link = annotation.alignment_metadata_path
    linked = [t for t in run.tomograms if link is None or t.alignment_metadata_path in (None, link)]
    same = [t for t in linked if abs(t.voxel_spacing - annotation.voxel_spacing) < 1e-6]
    candidates = same or linked
    return min(candidates, key=lambda t: t.id) if candidates else None


def _size_at(tomogram: Tomogram | None, spacing: float) -> tuple[int, int, int] | None:
    if tomogram is None or tomogram.size_xyz is None:
        return None
    ratio = tomogram.voxel_spacing / spacing
    return tuple(math.ceil(n * ratio - 1e-6) for n in tomogram.size_xyz)  # type: ignore[return-value]


def _extent(tomogram: Tomogram | None) -> tuple[float, float, float] | None:
    if tomogram is None or tomogram.size_xyz is None:
        return None
    return tuple(n * tomogram.voxel_spacing * ANGSTROM for n in tomogram.size_xyz)  # type: ignore[return-value]


def _diameter(annotation: Annotation) -> float | None:
    """Metadata or table diameter in Å (cryoet_ng/particles.py); None = the configured fallback."""
    obj = annotation.metadata.get("annotation_object")
    return metadata_diameter(obj) or table_diameter((obj or {}).get("id"))
