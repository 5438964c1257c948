"""Annotation folders: data files (ndjson points, OME-Zarr + MRC masks) and metadata.

One :class:`AnnotationSpec` describes an annotation as the portal's ingestion config
would (object, method, flags, sources); :func:`write_annotation` writes
``Annotations/<id>/<slug>-<version>_<shape>.<ext>`` for each source and then, last,
the ``<slug>-<version>.json`` metadata (spec sections 1-3). A :class:`Source` without data is
listed in the metadata but not written (metadata-only trees for ngstate tests and benchmarks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from cryoet_ng.catalogue import VOLUME_SHAPES, annotation_stem, slugify
from cryoet_ng.sample.files import write_bytes, write_json
from cryoet_ng.sample.metadata import DATASET_AUTHORS, dates
from cryoet_ng.sample.omezarr import Pyramid, write_mrc, write_omezarr
from cryoet_ng.sample.spec import (
    DATASET_DEPOSITION,
    LAST_UPDATED_AT,
    AnnotationRecord,
    FileRecord,
)

T = TypeVar("T")
_POINT = '{"type": "point", "location": {"x": %.2f, "y": %.2f, "z": %.2f}}\n'
_INSTANCE = (
    '{"type": "instancePoint", "location": {"x": %.2f, "y": %.2f, "z": %.2f}, "instance_id": %d}\n'
)
_ORIENTED = (
    '{"type": "orientedPoint", "location": {"x": %.2f, "y": %.2f, "z": %.2f}, '
    '"xyz_rotation_matrix": [[%.6f, %.6f, %.6f], [%.6f, %.6f, %.6f], [%.6f, %.6f, %.6f]]}\n'
)


@dataclass(frozen=True)
class AnnotationObject:
    id: str | None  # ontology id, e.g. GO:0022626 (some portal annotations have none)
    name: str
    description: str | None = None
    state: str | None = None
    diameter: float | None = None  # Å; read by the portal's point encoder, absent from the schema

    def to_json(self) -> dict[str, str | float]:
        doc: dict[str, str | float] = (
            {"name": self.name} if self.id is None else {"id": self.id, "name": self.name}
        )
        if self.description:
            doc["description"] = self.description
        if self.state:
            doc["state"] = self.state
        if self.diameter:
            doc["diameter"] = self.diameter
        return doc


@dataclass(frozen=True)
class Source:
    """One shape of an annotation and its data (points in x, y, z voxels; masks z, y, x)."""

    shape: str  # Point, OrientedPoint, InstanceSegmentation, SegmentationMask, ...
    is_visualization_default: bool | None  # None: the metadata does not say
    points: np.ndarray | None = None
    rotations: np.ndarray | None = None  # OrientedPoint: (n, 3, 3)
    instance_ids: np.ndarray | None = None  # InstanceSegmentation: (n,)
    pyramid: Pyramid | None = None  # masks
    mesh: bytes | None = None  # TriangularMesh: the glb itself
    template: bytes | None = None  # OrientedPoint: particle model glb (mesh_source_path)

    @property
    def has_data(self) -> bool:
        return self.points is not None or self.pyramid is not None or self.mesh is not None

    def object_count(self) -> int:
        """Portal rule: records, distinct instances, distinct labels, or 0 for semantic masks
        (and 0 without data: give ``object_count`` as a metadata override)."""
        if not self.has_data:
            return 0
        if self.shape == "InstanceSegmentation":
            return len(np.unique(self._need(self.instance_ids, "instance_ids")))
        if self.shape == "InstanceSegmentationMask":
            return len(self.labels())
        if self.shape == "SegmentationMask":
            return 0
        if self.shape == "TriangularMesh":
            return 1
        return len(self._need(self.points, "points"))

    def labels(self) -> list[int]:
        """Non-zero labels of an instance mask's level 0 (sorting only the labelled voxels)."""
        level0 = self._need(self.pyramid, "pyramid").levels[0]
        return [int(v) for v in np.unique(level0[level0 != 0])]

    def ndjson(self) -> bytes:
        """All records in one formatting call (no per-point Python loop)."""
        pts = np.asarray(self._need(self.points, "points"), np.float64)
        if self.shape == "Point":
            fmt, values = _POINT, pts
        elif self.shape == "OrientedPoint":
            rotations = self._need(self.rotations, "rotations").reshape(len(pts), 9)
            fmt, values = _ORIENTED, np.hstack([pts, rotations])
        elif self.shape == "InstanceSegmentation":
            ids = self._need(self.instance_ids, "instance_ids")
            fmt, values = _INSTANCE, np.hstack([pts, ids[:, None]])
        else:
            raise ValueError(f"{self.shape} is not a point shape")
        return ((fmt * len(values)) % tuple(values.ravel().tolist())).encode()

    def _need(self, value: T | None, name: str) -> T:
        if value is None:
            raise ValueError(f"a {self.shape} source needs {name}")
        return value


@dataclass(frozen=True)
class AnnotationSpec:
    """What a dataset YAML says about one annotation."""

    obj: AnnotationObject
    ingest_id: str
    method_type: str  # manual, automated, hybrid, simulated
    ground_truth: bool
    curator_recommended: bool
    method: str
    software: str
    deposition_id: int
    authors: list[dict[str, Any]]
    sources: tuple[Source, ...]
    version: float = 1.0
    confidence: dict[str, Any] | None = None
    publications: str = ""
    links: tuple[dict[str, str], ...] = field(default_factory=tuple)

    def metadata(
        self, files: list[dict[str, Any]], alignment: str, object_count: int
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "annotation_ingest_id": self.ingest_id,
            "annotation_object": self.obj.to_json(),
            "annotation_method": self.method,
            "method_type": self.method_type,
            "ground_truth_status": self.ground_truth,
            "is_curator_recommended": self.curator_recommended,
            "annotation_software": self.software,
            "annotation_publications": self.publications,
            "method_links": list(self.links),
            "version": self.version,
            "object_count": object_count,
            "files": files,
            "authors": self.authors,
            "dates": dates(),
            "alignment_metadata_path": alignment,
            "deposition_id": self.deposition_id,
            "last_updated_at": LAST_UPDATED_AT,
        }
        if self.confidence is not None:
            doc["confidence"] = self.confidence
        return doc

    def stem(self) -> str:
        return annotation_stem({"annotation_object": self.obj.to_json(), "version": self.version})


def annotation_spec(
    obj: AnnotationObject,
    *sources: Source,
    method_type: str = "manual",
    ground_truth: bool = False,
    curator_recommended: bool = False,
    version: float = 1.0,
    ingest_id: str | None = None,
    method: str = "manual annotation",
    software: str = "IMOD",
) -> AnnotationSpec:
    """An annotation deposited with the dataset, by its authors, with the given flags."""
    return AnnotationSpec(
        obj=obj,
        ingest_id=ingest_id or f"{slugify(obj.name)}-1",
        method_type=method_type,
        ground_truth=ground_truth,
        curator_recommended=curator_recommended,
        method=method,
        software=software,
        deposition_id=DATASET_DEPOSITION,
        authors=DATASET_AUTHORS,
        sources=sources,
        version=version,
    )


@dataclass(frozen=True)
class Target:
    """Where an annotation goes and against what it is checked."""

    root: Path  # data root
    folder: str  # bucket-relative Annotations/<id> folder
    dataset_id: str
    run_name: str
    voxel_spacing: float
    size_xyz: tuple[int, int, int]  # tomogram size at this spacing (bounds check)
    alignment: str  # bucket-relative alignment_metadata.json
    mrc_max_bytes: int


def _check_bounds(points: np.ndarray, size_xyz: tuple[int, int, int], where: str) -> None:
    upper = np.asarray(size_xyz) - 1
    if len(points) and (np.any(points < 0) or np.any(points > upper)):
        raise ValueError(f"{where}: a coordinate leaves 0..size-1 {tuple(upper)}")


def write_annotation(
    target: Target, spec: AnnotationSpec, overrides: Mapping[str, Any] | None = None
) -> AnnotationRecord:
    """Write the data files of every source, then the metadata file (portal order).

    ``overrides``: top-level metadata fields replacing the ones derived from ``spec``.
    """
    fixed = {"annotation_object", "version", "files"} & set(overrides or {})
    if fixed:
        raise ValueError(f"{target.folder}: {sorted(fixed)} follow the spec, not overrides")
    stem = spec.stem()
    files: list[FileRecord] = []
    volume_shape = None
    for source in spec.sources:
        base = f"{target.folder}/{stem}_{source.shape.lower()}"
        flag = source.is_visualization_default
        if not source.has_data:
            formats = (
                ("zarr", "mrc")
                if source.shape in VOLUME_SHAPES
                else ("glb",)
                if source.shape == "TriangularMesh"
                else ("ndjson",)
            )
            files += [FileRecord(source.shape, f, f"{base}.{f}", flag, False) for f in formats]
            continue
        if source.mesh is not None:
            write_bytes(target.root / f"{base}.glb", source.mesh)
            files.append(FileRecord(source.shape, "glb", f"{base}.glb", flag))
            continue
        if source.pyramid is None:
            _check_bounds(source._need(source.points, "points"), target.size_xyz, base)
            write_bytes(target.root / f"{base}.ndjson", source.ndjson())
            model = None
            if source.template is not None:
                model = f"{base}_template.glb"
                write_bytes(target.root / model, source.template)
            files.append(FileRecord(source.shape, "ndjson", f"{base}.ndjson", flag, True, model))
            continue
        level0 = source.pyramid.levels[0]
        if level0.shape != tuple(reversed(target.size_xyz)):
            raise ValueError(f"{base}: mask shape {level0.shape} != volume {target.size_xyz[::-1]}")
        volume_shape = level0.shape
        extra = None
        if source.shape == "InstanceSegmentationMask":
            colors = [{"label-value": v} for v in source.labels()]
            extra = {"image-label": {"version": "0.4", "colors": colors}}
        write_omezarr(target.root / f"{base}.zarr", source.pyramid, extra)
        files.append(FileRecord(source.shape, "zarr", f"{base}.zarr", flag))
        # The portal always lists the MRC twin; large ones are skipped at demo size.
        write_twin = level0.nbytes <= target.mrc_max_bytes
        if write_twin:
            write_mrc(target.root / f"{base}.mrc", level0, target.voxel_spacing, "cryoet-ng sample")
        files.append(FileRecord(source.shape, "mrc", f"{base}.mrc", flag, written=write_twin))
    entries = [_file_entry(f) for f in files]
    metadata_path = f"{target.folder}/{stem}.json"
    count = spec.sources[0].object_count()
    metadata = spec.metadata(entries, target.alignment, count) | dict(overrides or {})
    write_json(target.root / metadata_path, metadata)
    return AnnotationRecord(
        dataset_id=target.dataset_id,
        run_name=target.run_name,
        voxel_spacing=target.voxel_spacing,
        annotation_id=target.folder.rsplit("/", 1)[1],
        stem=stem,
        object_name=spec.obj.name,
        object_count=int(metadata["object_count"]),
        metadata_path=metadata_path,
        files=tuple(files),
        volume_shape_zyx=volume_shape,
    )


def _file_entry(file: FileRecord) -> dict[str, Any]:
    """One ``files[]`` entry; the flag is left out when unknown (older portal metadata)."""
    entry: dict[str, Any] = {"format": file.format, "path": file.path, "shape": file.shape}
    if file.is_visualization_default is not None:
        entry["is_visualization_default"] = file.is_visualization_default
    if file.mesh_source_path:
        entry["mesh_source_path"] = file.mesh_source_path
    return entry
