"""Sizes, fixed constants and the manifest of a generated sample tree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SizeName = Literal["test", "demo"]

VOXEL_SPACING = 13.48  # Å, the portal's most common spacing (dataset 10000)
BINNED_SPACING = 2 * VOXEL_SPACING  # the 2x binned VoxelSpacing26.960 folder
# Fixed "clock": every last_updated_at and date is a constant so output is reproducible.
LAST_UPDATED_AT = 1717200000
DEPOSITION_DATE = "2024-05-31"
RELEASE_DATE = "2024-06-14"
DATASET_DEPOSITION = 10300  # the dataset authors' deposition
COMMUNITY_DEPOSITION = 10301  # a later community deposition of model predictions


@dataclass(frozen=True)
class SizeSpec:
    """How big and how crowded one synthetic tomogram is."""

    name: SizeName
    shape_zyx: tuple[int, int, int]
    ribosomes: int  # dense particles (ground-truth picks); fewer if the cell is too crowded
    atp_synthases: int  # oriented particles on the cell membrane
    vesicles: int
    many_points: int  # the crowded automated prediction of run TS_100
    # MRC twins of masks are written only up to this many bytes (the portal lists them anyway).
    mrc_max_bytes: int


SIZES: dict[str, SizeSpec] = {
    "test": SizeSpec("test", (64, 128, 128), 14, 10, 3, 20_000, 1 << 40),
    "demo": SizeSpec("demo", (184, 630, 630), 260, 70, 9, 200_000, 32 << 20),
}


@dataclass(frozen=True)
class FileRecord:
    """One ``files[]`` entry of an annotation, and whether its data was written."""

    shape: str
    format: str
    path: str  # bucket-relative
    is_visualization_default: bool | None  # None: not in the metadata
    written: bool = True


@dataclass(frozen=True)
class AnnotationRecord:
    dataset_id: str
    run_name: str
    voxel_spacing: float
    annotation_id: str
    stem: str  # <slug>-<version>
    object_name: str
    object_count: int
    metadata_path: str  # bucket-relative
    files: tuple[FileRecord, ...]
    # Level-0 array shape (z, y, x) of volume annotations, else None.
    volume_shape_zyx: tuple[int, int, int] | None = None

    @property
    def shapes(self) -> tuple[str, ...]:
        return tuple(f.shape for f in self.files)


@dataclass(frozen=True)
class TomogramRecord:
    dataset_id: str
    run_name: str
    tomogram_id: str
    voxel_spacing: float
    size_xyz: tuple[int, int, int]
    omezarr_dir: str
    mrc_file: str | None
    is_visualization_default: bool
    alignment_metadata_path: str


@dataclass(frozen=True)
class RunRecord:
    dataset_id: str
    name: str
    alignment_metadata_path: str


@dataclass
class SampleManifest:
    """What :func:`cryoet_ng.sample.generate` wrote (paths bucket-relative to the root)."""

    seed: int
    size: SizeName
    datasets: list[str] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    tomograms: list[TomogramRecord] = field(default_factory=list)
    annotations: list[AnnotationRecord] = field(default_factory=list)

    def annotations_of(self, dataset_id: str, run_name: str) -> list[AnnotationRecord]:
        return [a for a in self.annotations if (a.dataset_id, a.run_name) == (dataset_id, run_name)]

    def summary(self) -> str:
        points = sum(a.object_count for a in self.annotations if "Point" in a.shapes)
        return (
            f"{len(self.datasets)} datasets, {len(self.runs)} runs, "
            f"{len(self.tomograms)} tomograms, {len(self.annotations)} annotations "
            f"({points} points)"
        )
