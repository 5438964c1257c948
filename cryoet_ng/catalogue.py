"""Read a portal-layout data tree: datasets, runs, voxel spacings, tomograms, annotations.

This is the one place that knows the portal's input layout (as the portal's ingestion,
chanzuckerberg/cryoet-data-portal-backend ``ingestion_tools``, writes it; outputs:
:mod:`cryoet_ng.layout`). Both layouts are read: the current
``<run>/Reconstructions/VoxelSpacing<vs>/{Tomograms/<id>,Annotations/<id>}`` and,
read-only, the older ``<run>/Tomograms/VoxelSpacing<vs>/{CanonicalTomogram,Annotations}``.

A partial or damaged tree never raises: every problem becomes a
:class:`CatalogueWarning` naming the path, and the item is skipped.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

POINT_SHAPES = ("Point", "OrientedPoint", "InstanceSegmentation")
VOLUME_SHAPES = ("SegmentationMask", "InstanceSegmentationMask")
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
    path: Path
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
    path: Path  # absolute local path of the data file or directory
    relative_path: str  # bucket-relative path as written in the metadata
    is_visualization_default: bool | None  # None when the metadata does not say

    @property
    def is_precomputable(self) -> bool:
        return PRECOMPUTED_FORMATS.get(self.shape) == self.format


@dataclass(frozen=True)
class Annotation:
    id: str  # annotation id, unique per VoxelSpacing directory
    voxel_spacing: float  # Å per voxel of the coordinates / volume
    metadata_path: Path
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


@dataclass(frozen=True)
class Tomogram:
    id: str
    voxel_spacing: float
    metadata_path: Path
    metadata: dict[str, Any] = field(repr=False, compare=False)
    omezarr_path: Path | None = None
    omezarr_relative: str | None = None
    mrc_path: Path | None = None

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
    path: Path  # the VoxelSpacing<vs> folder
    tomograms: dict[str, Tomogram] = field(default_factory=dict)
    annotations: dict[str, Annotation] = field(default_factory=dict)
    legacy: bool = False


@dataclass
class Run:
    dataset_id: str
    name: str
    path: Path
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

    def annotations_for(self, tomogram: Tomogram) -> list[Annotation]:
        """Annotations of the tomogram's alignment (all of the run when unlinked)."""
        link = tomogram.alignment_metadata_path
        annotations = self.annotations
        if link is not None:
            annotations = [a for a in annotations if a.alignment_metadata_path in (None, link)]
        return sorted(annotations, key=lambda a: (a.voxel_spacing, _num(a.id)))

    def scanned_paths(self) -> list[Path]:
        """The folders and metadata files a scan of this run reads: while none of them
        changes (a folder changes when an entry is added, removed or renamed in it), a new
        scan finds the same run. Paths that do not exist are included: their creation counts."""
        paths = [
            self.path,
            self.path / "run_metadata.json",
            self.path / "Reconstructions",
            self.path / "Tomograms",
        ]
        for vs in self.spacings.values():
            paths += [vs.path, vs.path / "Tomograms", vs.path / "Annotations"]
            paths += [t.metadata_path for t in vs.tomograms.values()]
            paths += [a.metadata_path for a in vs.annotations.values()]
        return paths

    def spacing_dir(self, spacing: float) -> VoxelSpacingDir | None:
        return next((v for v in self.spacings.values() if abs(v.spacing - spacing) < 1e-6), None)


@dataclass
class Dataset:
    id: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    runs: dict[str, Run] = field(default_factory=dict)


@dataclass
class Catalogue:
    root: Path
    datasets: dict[str, Dataset] = field(default_factory=dict)
    warnings: list[CatalogueWarning] = field(default_factory=list)

    @classmethod
    def scan(cls, root: str | Path, datasets: list[str] | None = None) -> Catalogue:
        """Read the tree under ``root`` (optionally only the named datasets)."""
        catalogue = cls(Path(root).resolve())
        _Scanner(catalogue).scan(datasets)
        return catalogue

    def run(self, dataset_id: str, run_name: str) -> Run | None:
        dataset = self.datasets.get(dataset_id)
        return dataset.runs.get(run_name) if dataset else None

    def runs(self) -> Iterator[Run]:
        for dataset in self.datasets.values():
            yield from dataset.runs.values()

    def relative(self, path: Path) -> str:
        """Path relative to the data root, with forward slashes (bucket-relative form)."""
        return path.resolve().relative_to(self.root).as_posix()


def _num(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 62, text)


class _Scanner:
    def __init__(self, catalogue: Catalogue) -> None:
        self.cat = catalogue

    def warn(self, path: Path, message: str, skipped: bool = True) -> None:
        warning = CatalogueWarning(path, message, skipped)
        self.cat.warnings.append(warning)
        log.warning("%s", warning)

    def read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            self.warn(path, f"cannot read: {exc.strerror}")
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.warn(path, f"not valid JSON ({exc}); skipped")
            return None
        if not isinstance(data, dict):
            self.warn(path, "metadata is not a JSON object; skipped")
            return None
        return data

    def scan(self, only: list[str] | None) -> None:
        root = self.cat.root
        if not root.is_dir():
            self.warn(root, "data root is not a directory")
            return
        for ds_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
            if only and ds_dir.name not in only:
                continue
            meta_path = ds_dir / "dataset_metadata.json"
            meta = self.read_json(meta_path) if meta_path.exists() else {}
            dataset = Dataset(ds_dir.name, ds_dir, meta or {})
            for run_dir in sorted(p for p in ds_dir.iterdir() if p.is_dir()):
                run = self.scan_run(dataset, run_dir)
                if run is not None:
                    dataset.runs[run.name] = run
            self.cat.datasets[dataset.id] = dataset

    def scan_run(self, dataset: Dataset, run_dir: Path) -> Run | None:
        meta_path = run_dir / "run_metadata.json"
        recon = run_dir / "Reconstructions"
        legacy = run_dir / "Tomograms"
        if not meta_path.exists() and not recon.is_dir() and not legacy.is_dir():
            return None  # Images/ and other non-run folders
        meta = self.read_json(meta_path) if meta_path.exists() else {}
        run = Run(dataset.id, run_dir.name, run_dir, meta or {})
        for parent, is_legacy in ((recon, False), (legacy, True)):
            if not parent.is_dir():
                continue
            for vs_dir in sorted(parent.iterdir()):
                match = _VS_DIR.match(vs_dir.name)
                if not (vs_dir.is_dir() and match):
                    continue
                vs = VoxelSpacingDir(float(match.group(1)), vs_dir, legacy=is_legacy)
                if is_legacy:
                    self.scan_legacy_spacing(run, vs)
                else:
                    self.scan_spacing(run, vs)
                run.spacings[vs_dir.name if not is_legacy else f"legacy/{vs_dir.name}"] = vs
        if not run.tomograms:
            self.warn(run_dir, "run has no tomogram", skipped=False)
        return run

    def scan_spacing(self, run: Run, vs: VoxelSpacingDir) -> None:
        tomo_root = vs.path / "Tomograms"
        if tomo_root.is_dir():
            for tdir in sorted(p for p in tomo_root.iterdir() if p.is_dir()):
                meta_path = tdir / "tomogram_metadata.json"
                if not meta_path.exists():
                    self.warn(tdir, "tomogram folder without tomogram_metadata.json; skipped")
                    continue
                meta = self.read_json(meta_path)
                if meta is not None:
                    vs.tomograms[tdir.name] = self.make_tomogram(tdir.name, vs, meta_path, meta)
        ann_root = vs.path / "Annotations"
        if ann_root.is_dir():
            for adir in sorted(p for p in ann_root.iterdir() if p.is_dir()):
                metas = sorted(adir.glob("*[0-9].json"))
                if not metas:
                    self.warn(adir, "annotation folder without metadata file; skipped")
                    continue
                meta = self.read_json(metas[0])
                if meta is not None:
                    ann = self.make_annotation(adir.name, vs, metas[0], meta)
                    if ann is not None:
                        vs.annotations[ann.id] = ann

    def scan_legacy_spacing(self, run: Run, vs: VoxelSpacingDir) -> None:
        canonical = vs.path / "CanonicalTomogram"
        meta_path = canonical / "tomogram_metadata.json"
        if meta_path.exists():
            meta = self.read_json(meta_path)
            if meta is not None:
                vs.tomograms["canonical"] = self.make_tomogram("canonical", vs, meta_path, meta)
        ann_root = vs.path / "Annotations"
        if ann_root.is_dir():
            for meta_path in sorted(ann_root.glob("*[0-9].json")):
                match = _OLD_ANNOTATION.match(meta_path.name)
                if not match:
                    continue
                meta = self.read_json(meta_path)
                if meta is not None:
                    ann = self.make_annotation(match.group(1), vs, meta_path, meta)
                    if ann is not None:
                        vs.annotations[ann.id] = ann

    def local_path(self, relative: str) -> Path | None:
        """Bucket-relative path -> local path; None when it would leave the data root."""
        path = (self.cat.root / relative.lstrip("/")).resolve()
        return path if path.is_relative_to(self.cat.root) else None

    def make_tomogram(
        self, tomo_id: str, vs: VoxelSpacingDir, meta_path: Path, meta: dict[str, Any]
    ) -> Tomogram:
        zarr_rel = meta.get("omezarr_dir")
        zarr_path = self.local_path(zarr_rel) if isinstance(zarr_rel, str) else None
        if zarr_path is None or not zarr_path.is_dir():
            found = sorted(meta_path.parent.glob("*.zarr"))
            zarr_path = found[0] if found else None
            zarr_rel = self.cat.relative(zarr_path) if zarr_path else None
        mrc_rel = meta.get("mrc_file")
        mrc_path = self.local_path(mrc_rel) if isinstance(mrc_rel, str) else None
        if mrc_path is not None and not mrc_path.is_file():
            mrc_path = None
        if zarr_path is None:
            self.warn(meta_path.parent, "tomogram has no OME-Zarr", skipped=False)
        raw_spacing = meta.get("voxel_spacing", vs.spacing)
        try:
            spacing = float(raw_spacing)
        except (TypeError, ValueError):
            # A damaged metadata file must not stop the scan: use the folder's spacing.
            self.warn(
                meta_path, f"voxel_spacing {raw_spacing!r} is not a number; using {vs.spacing}"
            )
            spacing = vs.spacing
        return Tomogram(tomo_id, spacing, meta_path, meta, zarr_path, zarr_rel, mrc_path)

    def make_annotation(
        self, ann_id: str, vs: VoxelSpacingDir, meta_path: Path, meta: dict[str, Any]
    ) -> Annotation | None:
        obj = meta.get("annotation_object")
        if not isinstance(obj, dict) or not obj.get("name"):
            self.warn(meta_path, "annotation metadata lacks annotation_object.name; skipped")
            return None
        files = []
        for i, entry in enumerate(meta.get("files") or []):
            if not isinstance(entry, dict) or not {"shape", "format", "path"} <= set(entry):
                self.warn(meta_path, f"files[{i}] lacks shape/format/path; entry skipped")
                continue
            rel = str(entry["path"])
            local = self.local_path(rel)
            if local is None:
                self.warn(meta_path, f"files[{i}] path {rel!r} leaves the data root; skipped")
                continue
            flag = entry.get("is_visualization_default")
            files.append(
                AnnotationFile(
                    shape=str(entry["shape"]),
                    format=str(entry["format"]),
                    path=local,
                    relative_path=rel,
                    is_visualization_default=None if flag is None else bool(flag),
                )
            )
        return Annotation(ann_id, vs.spacing, meta_path, meta, tuple(files))
