"""Read a portal-layout data tree: datasets, runs, voxel spacings, tomograms, annotations.

This is the one place that knows the portal's folder layout (see
shared/portal-data-format.md). Both layouts are read: the current
``<run>/Reconstructions/VoxelSpacing<vs>/{Tomograms/<id>,Annotations/<id>}`` and,
read-only, the older ``<run>/Tomograms/VoxelSpacing<vs>/{CanonicalTomogram,Annotations}``.

The tree is read through a :mod:`cryoet_ng.store` (local folder, ``s3://``, ``gs://``,
or ``https://`` with its published index) by :mod:`cryoet_ng.treescan`, which turns
listings and metadata documents into plain records; the same records are what
:mod:`cryoet_ng.index` stores, so a catalogue built from a live scan and one loaded from
the index are the same. Items of a local tree carry :class:`pathlib.Path` objects, those
of a remote tree :class:`cryoet_ng.store.Location` objects (see :data:`TreePath`).

Alignment matching (:meth:`Run.aligned`), as the portal's
``visualization_config.get_annotation_layer_info`` does: an annotation belongs to a
tomogram's state only when its ``alignment_metadata_path`` equals the tomogram's. Where
a link is missing we differ from the portal, which skips unlinked tomograms and drops
unlinked annotations: an unlinked annotation or tomogram is matched only when the run
has at most one alignment (so the missing link cannot name another one). Legacy-layout
trees have no links at all and keep every annotation of the run; a run with several
alignments leaves its unlinked annotations out of every state.

A partial or damaged tree never raises: every problem becomes a
:class:`CatalogueWarning` naming the path, and the item is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryoet_ng.store import Location, TreePath

POINT_SHAPES = ("Point", "OrientedPoint", "InstanceSegmentation")
VOLUME_SHAPES = ("SegmentationMask", "InstanceSegmentationMask")
MESH_SHAPES = ("TriangularMesh",)
# Shapes the precompute turns into Neuroglancer data, with the file format it reads.
PRECOMPUTED_FORMATS = {
    "Point": "ndjson",
    "OrientedPoint": "ndjson",
    "InstanceSegmentation": "ndjson",
    "SegmentationMask": "zarr",
    "InstanceSegmentationMask": "zarr",
}
_VS_DIR = re.compile(r"^VoxelSpacing(\d+(?:\.\d+)?)$")
_OLD_ANNOTATION = re.compile(r"^(\d+)-(.+[0-9])\.json$")


@dataclass(frozen=True)
class CatalogueWarning:
    path: TreePath
    message: str
    # True when an input was skipped because of it (a batch then fails); False for notes
    # about a valid but partial tree, such as a run without tomograms.
    skipped: bool = True

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def voxel_spacing_dirname(spacing: float) -> str:
    """``13.48`` -> ``VoxelSpacing13.480`` (the portal always writes 3 decimals)."""
    return f"VoxelSpacing{spacing:.3f}"


def slugify(text: str) -> str:
    """Lower-case, every character outside [0-9a-z] replaced by ``_`` (portal rule)."""
    return re.sub(r"[^0-9a-z]", "_", text.lower())


def version_slug(version: Any) -> str:
    return re.sub(r"[^0-9a-z.]", "_", str(version).lower())


def annotation_stem(metadata: dict[str, Any]) -> str:
    """``<slug>-<version>``: the metadata file stem the portal writes."""
    obj = metadata.get("annotation_object") or {}
    description = obj.get("description")
    base = description if description and len(description) <= 50 else obj.get("name", "")
    return f"{slugify(base)}-{version_slug(metadata.get('version', '1.0'))}"


@dataclass(frozen=True)
class AnnotationFile:
    shape: str
    format: str
    path: TreePath  # the data file or directory (local path, or Location on a store)
    relative_path: str  # bucket-relative path as written in the metadata
    is_visualization_default: bool | None  # None when the metadata does not say
    exists: bool = True  # found by the listing (outside the run: assumed)
    # Cheap change signature of the input (sizes and versions of its objects), from the
    # listing; None when unknown.
    signature: str | None = None

    @property
    def is_precomputable(self) -> bool:
        return PRECOMPUTED_FORMATS.get(self.shape) == self.format


@dataclass(frozen=True)
class Annotation:
    id: str  # annotation id, unique per VoxelSpacing directory
    voxel_spacing: float  # Å per voxel of the coordinates / volume
    metadata_path: TreePath
    metadata: dict[str, Any] = field(repr=False, compare=False)
    files: tuple[AnnotationFile, ...] = ()

    @property
    def stem(self) -> str:
        """``<slug>-<version>``, taken from the metadata file name."""
        name = self.metadata_path.stem
        match = re.match(r"^\d+-(.+)$", name)
        return match.group(1) if match and not self.metadata_path.parent.name.isdigit() else name

    @property
    def object_name(self) -> str:
        return str((self.metadata.get("annotation_object") or {}).get("name", ""))

    @property
    def object_id(self) -> str | None:
        return (self.metadata.get("annotation_object") or {}).get("id")

    @property
    def object_description(self) -> str | None:
        return (self.metadata.get("annotation_object") or {}).get("description")

    @property
    def method_type(self) -> str:
        return str(self.metadata.get("method_type", "")).lower()

    @property
    def ground_truth(self) -> bool:
        return bool(self.metadata.get("ground_truth_status", False))

    @property
    def curator_recommended(self) -> bool:
        return bool(self.metadata.get("is_curator_recommended", False))

    @property
    def version(self) -> float:
        try:
            return float(self.metadata.get("version", 1.0))
        except (TypeError, ValueError):
            return 0.0

    @property
    def alignment_metadata_path(self) -> str | None:
        return self.metadata.get("alignment_metadata_path")

    def precompute_dirname(self, shape: str) -> str:
        """``<id>-<slug>-<version>_<shape lowercased>``: the portal's output folder name."""
        return f"{self.id}-{self.stem}_{shape.lower()}"


@dataclass(frozen=True)
class Tomogram:
    id: str
    voxel_spacing: float
    metadata_path: TreePath
    metadata: dict[str, Any] = field(repr=False, compare=False)
    omezarr_path: TreePath | None = None
    omezarr_relative: str | None = None
    mrc_path: TreePath | None = None
    omezarr_signature: str | None = None  # as AnnotationFile.signature

    @property
    def size_xyz(self) -> tuple[int, int, int] | None:
        size = self.metadata.get("size")
        if isinstance(size, dict) and all(k in size for k in "xyz"):
            return int(size["x"]), int(size["y"]), int(size["z"])
        return None

    @property
    def is_visualization_default(self) -> bool:
        return bool(self.metadata.get("is_visualization_default", True))

    @property
    def alignment_metadata_path(self) -> str | None:
        return self.metadata.get("alignment_metadata_path")


@dataclass
class VoxelSpacingDir:
    spacing: float
    path: TreePath  # the VoxelSpacing<vs> folder
    tomograms: dict[str, Tomogram] = field(default_factory=dict)
    annotations: dict[str, Annotation] = field(default_factory=dict)
    legacy: bool = False

    @property
    def precompute_dir(self) -> TreePath:
        return self.path / "NeuroglancerPrecompute"


@dataclass
class Run:
    dataset_id: str
    name: str
    path: TreePath
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    spacings: dict[str, VoxelSpacingDir] = field(default_factory=dict)

    @property
    def tomograms(self) -> list[Tomogram]:
        return [t for vs in self.spacings.values() for t in vs.tomograms.values()]

    @property
    def annotations(self) -> list[Annotation]:
        return [a for vs in self.spacings.values() for a in vs.annotations.values()]

    def tomogram(self, tomogram_id: str) -> Tomogram | None:
        return next((t for t in self.tomograms if t.id == tomogram_id), None)

    def default_tomogram(self) -> Tomogram | None:
        """The tomogram flagged for visualisation, else the one with the lowest id."""
        tomograms = sorted(
            self.tomograms, key=lambda t: (not t.is_visualization_default, _num(t.id))
        )
        return tomograms[0] if tomograms else None

    @property
    def alignments(self) -> set[str]:
        """Distinct alignment links of the run's tomograms and annotations."""
        links = {t.alignment_metadata_path for t in self.tomograms}
        links |= {a.alignment_metadata_path for a in self.annotations}
        return {link for link in links if link}

    def aligned(self, tomogram: Tomogram, annotation: Annotation) -> bool:
        """Whether ``annotation`` belongs to ``tomogram``'s alignment (see the module notes).

        Both linked: the links must be equal, as the portal matches them
        (``visualization_config.get_annotation_layer_info``). One side unlinked: only when
        the run has at most one alignment, so the missing link cannot be another one
        (legacy-layout trees have no links at all and keep every annotation).
        """
        mine, theirs = tomogram.alignment_metadata_path, annotation.alignment_metadata_path
        if mine and theirs:
            return mine == theirs
        return len(self.alignments) <= 1

    def annotations_for(self, tomogram: Tomogram) -> list[Annotation]:
        """Annotations of the tomogram's alignment, ordered by spacing and id."""
        annotations = [a for a in self.annotations if self.aligned(tomogram, a)]
        return sorted(annotations, key=lambda a: (a.voxel_spacing, _num(a.id)))

    def spacing_dir(self, spacing: float) -> VoxelSpacingDir | None:
        return next((v for v in self.spacings.values() if abs(v.spacing - spacing) < 1e-6), None)


@dataclass
class Dataset:
    id: str
    path: TreePath
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    runs: dict[str, Run] = field(default_factory=dict)


class LazyDatasets(Mapping[str, Dataset]):
    """Datasets by id, each built when first asked for (from an index)."""

    def __init__(self, ids: list[str], load: Callable[[str], Dataset | None]) -> None:
        self._ids = list(ids)
        self._load = load
        self._loaded: dict[str, Dataset | None] = {}

    def __getitem__(self, dataset_id: str) -> Dataset:
        if dataset_id not in self._loaded:
            if dataset_id not in self._ids:
                raise KeyError(dataset_id)
            self._loaded[dataset_id] = self._load(dataset_id)
        dataset = self._loaded[dataset_id]
        if dataset is None:
            raise KeyError(dataset_id)
        return dataset

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, dataset_id: object) -> bool:
        return dataset_id in self._ids

    @property
    def loaded(self) -> list[str]:
        return [k for k, v in self._loaded.items() if v is not None]


@dataclass
class Catalogue:
    root: TreePath
    datasets: Mapping[str, Dataset] = field(default_factory=dict)
    warnings: list[CatalogueWarning] = field(default_factory=list)

    @classmethod
    def scan(
        cls,
        root: str | Path,
        datasets: list[str] | None = None,
        runs: list[str] | None = None,
    ) -> Catalogue:
        """Read the tree at ``root`` (a folder or URL), optionally only the named datasets
        and runs. An ``http(s)://`` tree cannot be listed: its published index is read."""
        from cryoet_ng import treescan

        return treescan.scan(root, datasets, runs)

    def run(self, dataset_id: str, run_name: str) -> Run | None:
        dataset = self.datasets.get(dataset_id)
        return dataset.runs.get(run_name) if dataset else None

    def runs(self) -> Iterator[Run]:
        for dataset in self.datasets.values():
            yield from dataset.runs.values()

    def relative(self, path: TreePath) -> str:
        """Path relative to the data root, with forward slashes (bucket-relative form)."""
        if isinstance(path, Location):
            return path.relative_to(self.root)
        assert isinstance(self.root, Path)
        return path.resolve().relative_to(self.root).as_posix()


def _num(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 62, text)
