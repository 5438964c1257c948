"""Meshes: TriangularMesh glb -> multi-LOD mesh; OrientedPoint picks with a particle model
(``mesh_source_path``) -> the model at every pick (``_orientedmesh/``, beside the
``_orientedpoint/`` output of the same file, as the portal writes them).

Inputs on an object store are copied to a temporary folder first (glb readers need the
whole file; templates are small, pick files are read whole anyway).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cryoet_ng.catalogue import Annotation, Run
from cryoet_ng.config import Config
from cryoet_ng.layout import ORIENTED_MESH, Layout
from cryoet_ng.store import Location, TreePath, local_input
from cryoet_ng.summaries import Summary
from precompute.errors import InputError
from precompute.job_types.common import precompute_options
from precompute.jobs import AnnotationJob

TRIANGULAR_MESH = "TriangularMesh"


def mesh_options(config: Config) -> dict[str, Any]:
    """``meshes.*`` the converters read; the template rules only choose the template (whose
    bytes are hashed), so they are left out."""
    options = dataclasses.asdict(config.meshes)
    options.pop("templates", None)
    return options


@dataclass(frozen=True)
class TriangularMeshes(AnnotationJob):
    job_type: ClassVar[str] = "triangularmesh"
    inputs: ClassVar[tuple[str, ...]] = (TRIANGULAR_MESH,)
    priority: ClassVar[int] = 1

    @classmethod
    def from_annotation(
        cls, run: Run, annotation: Annotation, layout: Layout
    ) -> Iterator[TriangularMeshes]:
        """One job: the annotation's first TriangularMesh glb."""
        f = annotation.converted_file(TRIANGULAR_MESH)
        if f is not None:
            yield cls.create(run, annotation, layout, f.shape, f.path, signature=f.signature)

    def options(self, config: Config) -> dict[str, Any]:
        return mesh_options(config)

    def convert(self, config: Config) -> Summary:
        from precompute.meshes import convert_triangular_mesh

        with tempfile.TemporaryDirectory(prefix="glb-") as tmp:
            return convert_triangular_mesh(
                local_input(self.source, Path(tmp)),
                self.output,
                voxel_spacing=self.voxel_spacing,
                options=config.meshes,
                label=self.object_name,
                volume_size_xyz=self.volume_size_xyz,
                extent_m=self.extent_m,
                threads=config.precompute.workers,
            )


@dataclass(frozen=True)
class OrientedMeshes(AnnotationJob):
    """The particle model at every pick of an OrientedPoint ndjson (``source``)."""

    location_fields: ClassVar[tuple[str, ...]] = (
        *AnnotationJob.location_fields,
        "template",
        "metadata",
    )
    job_type: ClassVar[str] = "orientedmesh"
    inputs: ClassVar[tuple[str, ...]] = ("OrientedPoint",)
    priority: ClassVar[int] = 2  # thousands of models: among the longest jobs

    # The glb, or None when the declared path leaves the data root (an error at convert).
    template: TreePath | None = None
    template_declared: str = ""  # the path as written (metadata or configuration)
    template_origin: str = "mesh_source_path"  # or "meshes.templates"
    metadata: TreePath | None = None  # the annotation's metadata file (named in errors)

    @classmethod
    def from_annotation(
        cls, run: Run, annotation: Annotation, layout: Layout
    ) -> Iterator[OrientedMeshes]:
        """One job when the first OrientedPoint ndjson has a particle model."""
        f = annotation.converted_file("OrientedPoint")
        if f is not None and f.mesh_source_path:
            both = f.signature and f.mesh_source_signature  # picks and model
            signature = f"{f.signature}+{f.mesh_source_signature}" if both else None
            job = cls.create(run, annotation, layout, f.shape, f.path, ORIENTED_MESH, signature)
            yield dataclasses.replace(
                job,
                template=f.mesh_source,
                template_declared=f.mesh_source_path,
                metadata=annotation.metadata_path,
            )

    @classmethod
    def discover(
        cls, run: Run, annotation: Annotation, layout: Layout, config: Config | None
    ) -> Iterator[OrientedMeshes]:
        """As :meth:`from_annotation`; without ``mesh_source_path``, the first
        ``meshes.templates`` rule matching the object (path relative to the data root, or
        absolute)."""
        found = list(cls.from_annotation(run, annotation, layout))
        rule = (
            config.meshes.template_for(annotation.object_id, annotation.object_name)
            if (config is not None and not found)
            else None
        )
        picks = annotation.converted_file("OrientedPoint")
        if rule is None or picks is None:
            yield from found
            return
        job = cls.create(run, annotation, layout, picks.shape, picks.path, ORIENTED_MESH)
        yield dataclasses.replace(
            job,
            template=_configured(run, rule.path),
            template_declared=rule.path,
            template_origin="meshes.templates",
            metadata=annotation.metadata_path,
        )

    def signature_covers_inputs(self) -> bool:
        # From the listing: picks and model (mesh_source_path); a configured model has none.
        return self.signature is not None and self.template_origin == "mesh_source_path"

    def sources(self) -> tuple[TreePath, ...]:
        # A missing template is not hashed: the converter names it (InputError).
        template = self.template
        present = isinstance(template, Location) or (
            isinstance(template, Path) and template.is_file()
        )
        return (self.source, template) if present and template is not None else (self.source,)

    def options(self, config: Config) -> dict[str, Any]:
        return precompute_options(config) | {"meshes": mesh_options(config)}

    def convert(self, config: Config) -> Summary:
        from precompute.meshes import convert_oriented_mesh

        if self.template is None:
            where = self.metadata if self.metadata is not None else self.source
            raise InputError(
                where, f"{self.template_origin} {self.template_declared!r} leaves the data root"
            )
        with tempfile.TemporaryDirectory(prefix="glb-") as tmp:
            folders = Path(tmp) / "template", Path(tmp) / "picks"  # same names may clash
            for folder in folders:
                folder.mkdir()
            template = local_input(self.template, folders[0])
            picks = local_input(self.source, folders[1])
            summary = convert_oriented_mesh(
                template,
                picks,
                self.output,
                voxel_spacing=self.voxel_spacing,
                options=config.meshes,
                points=config.precompute,
                label=self.object_name,
                volume_size_xyz=self.volume_size_xyz,
                extent_m=self.extent_m,
                threads=config.precompute.workers,
            )
        summary.extra["template"] = self.template_declared  # bucket-relative, as declared
        return summary


def _configured(run: Run, path: str) -> TreePath | None:
    """A configured template path: absolute (local), else relative to the data root of
    ``run`` (the tree's store); None when it leaves that root."""
    if Path(path).expanduser().is_absolute():
        return Path(path).expanduser()
    if isinstance(run.path, Location):
        key = run.path.store.contains(path)
        return None if key is None else Location(run.path.root, key)
    root = run.path.parent.parent.resolve()  # <root>/<dataset>/<run>
    found = (root / path).resolve()
    return found if found.is_relative_to(root) else None
