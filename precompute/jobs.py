"""Units of precompute work, and the registry of job types that discovers them.

A *job type* is a class: it says which inputs it reads (annotation shapes, or
:data:`TOMOGRAM`), finds its jobs in a run (``from_annotation`` / ``from_tomogram``, zero or
more per input, so one annotation file can give several outputs), and carries its output
path, scheduling priority, fingerprint inputs and converter. The batch, the runner, the
fingerprint and the output roots only talk to this interface; none of them switches on a
type. Job types are registered by input shape in :data:`precompute.job_types.REGISTRY`, as
zarr-python registers codecs by name; adding one is a module and a ``register`` line.

A job carries everything its converter needs, so converters never see the catalogue. Jobs
are frozen dataclasses: they pickle cleanly to Dask workers. :class:`AnnotationJob` and
:class:`TomogramJob` hold the parameters converters read; registered job types subclass
them and add the converter.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from cryoet_ng.about import About
from cryoet_ng.catalogue import Annotation, Catalogue, Run, Tomogram
from cryoet_ng.config import Config
from cryoet_ng.layout import Layout, summary_path
from cryoet_ng.particles import metadata_diameter, table_diameter
from cryoet_ng.store import TreePath
from cryoet_ng.summaries import Summary
from cryoet_ng.vectors import triple

ANGSTROM = 1e-10
# The input name of job types that read a tomogram rather than an annotation file.
TOMOGRAM = "tomogram"


class Job:
    """The interface of every job type (see the module docstring).

    Not an ABC: the parameter classes below are instantiated directly (in tests, benchmarks)
    and handed to converters without being registered job types themselves.
    """

    # Identifies the type in fingerprints and messages, e.g. "points".
    job_type: ClassVar[str] = ""
    # Annotation shapes the type reads, or (TOMOGRAM,).
    inputs: ClassVar[tuple[str, ...]] = ()
    # Higher starts earlier: long jobs first, so that a short one is the last to run.
    priority: ClassVar[int] = 0
    # Fields left out of the fingerprint's parameters: locations (contents are hashed)
    # and the change signatures (precompute.signatures).
    location_fields: ClassVar[tuple[str, ...]] = (
        "source",
        "output",
        "summary",
        "signature",
        "known_fingerprint",
    )

    source: TreePath  # the main input (local, or on a store): named in failures and summary
    dataset_id: str
    run_name: str
    # Cheap change signature of ``source`` (sizes and versions from the listing) and the
    # fingerprint known for it from an earlier run (precompute.signatures); never hashed.
    signature: str | None
    known_fingerprint: str | None

    @property
    def name(self) -> str:
        """``<dataset>/<run>/<what>``: the job in tables, reports and logs."""
        raise NotImplementedError

    @property
    def summary(self) -> Path:
        """The summary: written last by the runner, it marks the job as done."""
        raise NotImplementedError

    @property
    def output_folder(self) -> Path | None:
        """The output folder, or None for a job whose only product is its summary."""
        return None

    @property
    def target(self) -> Path:
        """What the job produces: its output folder, else its summary."""
        return self.output_folder or self.summary

    def sources(self) -> tuple[TreePath, ...]:
        """Every input whose content the output depends on (hashed into the fingerprint)."""
        return (self.source,)

    def signature_covers_inputs(self) -> bool:
        """Whether :attr:`signature` changes whenever any of :meth:`sources` does (then a
        recorded fingerprint may stand in for hashing them: precompute.signatures)."""
        return self.signature is not None and self.sources() == (self.source,)

    def parameters(self) -> dict[str, Any]:
        """The job's fields without locations, and its type: part of the fingerprint."""
        assert dataclasses.is_dataclass(self)
        fields = dataclasses.asdict(self)
        for location in self.location_fields:
            fields.pop(location, None)
        fields["type"] = self.job_type
        fields["source_name"] = self.source.name  # formats are told apart by suffix
        return fields

    def options(self, config: Config) -> dict[str, Any]:
        """The configuration the converter reads (part of the fingerprint)."""
        return {}

    def with_known_fingerprint(self, fingerprint: str) -> Self:
        """This job, told its fingerprint (its input's signature is unchanged)."""
        assert dataclasses.is_dataclass(self) and not isinstance(self, type)
        return dataclasses.replace(self, known_fingerprint=fingerprint)

    def relocated(self, old: Path, new: Path) -> Self:
        """This job with every local path under ``old`` moved under ``new`` (its outputs,
        when an output root stages each job in a private folder where it runs)."""
        assert dataclasses.is_dataclass(self) and not isinstance(self, type)
        moved = {
            field.name: new / value.relative_to(old)
            for field in dataclasses.fields(self)
            if isinstance(value := getattr(self, field.name), Path) and value.is_relative_to(old)
        }
        return dataclasses.replace(self, **moved)

    def is_complete(self) -> bool:
        """Whether the output beside the summary exists (a precomputed folder has ``info``)."""
        folder = self.output_folder
        return folder is None or (folder / "info").is_file()

    def output_files(self) -> list[Path]:
        """Every file a finished job produced, the summary last."""
        folder = self.output_folder
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder else []
        return [*files, self.summary]

    def convert(self, config: Config) -> Summary:
        """Write the output (atomically) and return its summary; never writes the summary."""
        raise NotImplementedError(f"{type(self).__name__} is not a registered job type")

    @classmethod
    def from_annotation(cls, run: Run, annotation: Annotation, layout: Layout) -> Iterator[Job]:
        """This type's jobs for one annotation (called when it has a file of one of
        :attr:`inputs`)."""
        return iter(())

    @classmethod
    def from_tomogram(cls, run: Run, tomogram: Tomogram, layout: Layout) -> Iterator[Job]:
        """This type's jobs for one tomogram (called when :attr:`inputs` has TOMOGRAM)."""
        return iter(())

    @classmethod
    def discover(
        cls, run: Run, annotation: Annotation, layout: Layout, config: Config | None
    ) -> Iterator[Job]:
        """:meth:`from_annotation`, for the types whose jobs also depend on configuration
        (the batch passes its own; e.g. particle models configured by object)."""
        return cls.from_annotation(run, annotation, layout)


@dataclass(frozen=True)
class AnnotationJob(Job):
    """Convert one annotation file into one precomputed output folder."""

    source: TreePath  # ndjson file, OME-Zarr folder or MRC file (local, or on a store)
    shape: str  # portal shape, e.g. "OrientedPoint"
    output: Path  # final output folder (Layout.annotation_output)
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
    # What people read about the annotation (authors, method, status), written into the
    # output: segment properties, the name property's description. Part of the fingerprint.
    about: About | None = None
    # Cheap change signature of the source (sizes and versions from the listing) and the
    # fingerprint known for it from an earlier run (precompute.signatures); never hashed.
    signature: str | None = None
    known_fingerprint: str | None = None

    @property
    def name(self) -> str:
        return f"{self.dataset_id}/{self.run_name}/{self.output.name}"

    @property
    def summary(self) -> Path:
        return summary_path(self.output)

    @property
    def output_folder(self) -> Path:
        return self.output

    @classmethod
    def create(
        cls,
        run: Run,
        annotation: Annotation,
        layout: Layout,
        shape: str,
        source: TreePath,
        output_type: str | None = None,
        signature: str | None = None,
    ) -> Self:
        """A job of this type for one file of ``annotation``, its output named by
        ``output_type`` (default: the shape; see :mod:`cryoet_ng.layout`)."""
        reference = reference_tomogram(run, annotation)
        return cls(
            source=source,
            shape=shape,
            output=layout.annotation_output(run, annotation, output_type or shape),
            annotation_id=annotation.id,
            object_name=annotation.object_name,
            voxel_spacing=annotation.voxel_spacing,
            volume_size_xyz=_size_at(reference, annotation.voxel_spacing),
            extent_m=_extent(reference),
            diameter_angstrom=_diameter(annotation),
            dataset_id=run.dataset_id,
            run_name=run.name,
            about=About.from_metadata(annotation.metadata),
            signature=signature,
        )


@dataclass(frozen=True)
class TomogramJob(Job):
    """Compute the image-layer statistics of one tomogram into its summary JSON."""

    location_fields: ClassVar[tuple[str, ...]] = (
        "source",
        "summary_file",
        "mrc",
        "signature",
        "known_fingerprint",
    )

    source: TreePath  # OME-Zarr folder
    summary_file: Path  # Layout.tomogram_summary: the statistics are the whole output
    tomogram_id: str
    voxel_spacing: float
    mrc: TreePath | None = None
    dataset_id: str = ""
    run_name: str = ""
    signature: str | None = None  # as AnnotationJob.signature
    known_fingerprint: str | None = None

    @property
    def name(self) -> str:
        return f"{self.dataset_id}/{self.run_name}/tomogram {self.tomogram_id}"

    @property
    def summary(self) -> Path:
        return self.summary_file

    @classmethod
    def create(cls, run: Run, tomogram: Tomogram, layout: Layout, source: TreePath) -> Self:
        return cls(
            source=source,
            summary_file=layout.tomogram_summary(run, tomogram),
            tomogram_id=tomogram.id,
            voxel_spacing=tomogram.voxel_spacing,
            mrc=tomogram.mrc_path,
            dataset_id=run.dataset_id,
            run_name=run.name,
            signature=tomogram.omezarr_signature,
        )


class JobRegistry:
    """Job types by the input they read; discovery asks each the jobs of each input."""

    def __init__(self) -> None:
        self._types: list[type[Job]] = []  # in registration order

    def register(self, job_type: type[Job]) -> type[Job]:
        if not job_type.job_type or not job_type.inputs:
            raise ValueError(f"{job_type.__name__}: a job type names itself and its inputs")
        if any(t.job_type == job_type.job_type for t in self._types):
            raise ValueError(f"job type {job_type.job_type!r} is registered already")
        self._types.append(job_type)
        return job_type

    def for_input(self, *names: str) -> tuple[type[Job], ...]:
        """The job types reading any of these shapes (or TOMOGRAM), in registration order."""
        return tuple(t for t in self._types if not set(t.inputs).isdisjoint(names))

    def run_jobs(self, run: Run, layout: Layout, config: Config | None = None) -> Iterator[Job]:
        """Every job of a run, in a stable order: tomograms by id, then annotations (by
        spacing, id), each with its job types in registration order."""
        for tomogram in sorted(run.tomograms, key=lambda t: t.id):
            for job_type in self.for_input(TOMOGRAM):
                yield from job_type.from_tomogram(run, tomogram, layout)
        for annotation in run.annotations:
            for job_type in self.for_input(*(f.shape for f in annotation.files)):
                yield from job_type.discover(run, annotation, layout, config)

    def jobs(
        self,
        catalogue: Catalogue,
        out_root: Path,
        runs: tuple[str, ...] = (),
        config: Config | None = None,
    ) -> list[Job]:
        """Every job of the tree (optionally of the named runs only), outputs under
        ``out_root``, in a stable order (dataset, run, then as :meth:`run_jobs`)."""
        layout = Layout(out_root)
        return [
            job
            for run in catalogue.runs()
            if not runs or run.name in runs
            for job in self.run_jobs(run, layout, config)
        ]


def reference_tomogram(run: Run, annotation: Annotation) -> Tomogram | None:
    """The tomogram of the annotation's alignment, preferring the same voxel spacing."""
    linked = [t for t in run.tomograms if run.aligned(t, annotation)]
    same = [t for t in linked if abs(t.voxel_spacing - annotation.voxel_spacing) < 1e-6]
    candidates = same or linked
    return min(candidates, key=lambda t: t.id) if candidates else None


def _size_at(tomogram: Tomogram | None, spacing: float) -> tuple[int, int, int] | None:
    if tomogram is None or tomogram.size_xyz is None:
        return None
    ratio = tomogram.voxel_spacing / spacing
    return triple(math.ceil(n * ratio - 1e-6) for n in tomogram.size_xyz)


def _extent(tomogram: Tomogram | None) -> tuple[float, float, float] | None:
    if tomogram is None or tomogram.size_xyz is None:
        return None
    return triple(n * tomogram.voxel_spacing * ANGSTROM for n in tomogram.size_xyz)


def _diameter(annotation: Annotation) -> float | None:
    """Metadata or table diameter in Å (cryoet_ng/particles.py); None = the configured fallback."""
    obj = annotation.metadata.get("annotation_object")
    return metadata_diameter(obj) or table_diameter((obj or {}).get("id"))
