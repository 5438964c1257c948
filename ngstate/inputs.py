"""What a viewer state depends on: :func:`state_inputs`, the one answer.

A tomogram's state is built from the run's catalogue (metadata files, and the folders whose
listing decides which tomograms and annotations exist), the tomogram's summary, and for
every annotation file that has a precomputed output: the output folder, its summary, its
``info`` file and its failure record (:mod:`cryoet_ng.failures`: a stale or failed layer).
:func:`ngstate.candidates.gather` reads exactly these files,
:func:`ngstate.api.state_inputs_mtime` stats exactly these paths, and the server's state
cache rebuilds a state when one of them changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryoet_ng.catalogue import Annotation, AnnotationFile, Run, Tomogram
from cryoet_ng.layout import ORIENTED_MESH, AnyLayout, failure_path, summary_path
from cryoet_ng.store import TreePath


@dataclass(frozen=True)
class FileInput:
    """One annotation file and, when one is precomputed from it, its output folder.

    An OrientedPoint file has a second entry for its particle models (``output_type``
    :data:`~cryoet_ng.layout.ORIENTED_MESH`): that output exists when the annotation has a
    ``mesh_source_path`` (in the metadata, or only in the portal's ingestion config, so the
    folder decides).
    """

    annotation: Annotation
    file: AnnotationFile
    output: TreePath | None  # None: nothing is precomputed from this file
    output_type: str = ""  # the shape, or ORIENTED_MESH

    @property
    def is_oriented_mesh(self) -> bool:
        return self.output_type == ORIENTED_MESH

    def paths(self) -> tuple[TreePath, ...]:
        """The output folder, its summary, ``info`` file and failure record (none without an
        output)."""
        if self.output is None:
            return ()
        summary = summary_path(self.output)
        return (self.output, summary, self.output / "info", failure_path(summary))


@dataclass(frozen=True)
class StateInputs:
    tomograms: tuple[Tomogram, ...]
    tomogram_summaries: tuple[TreePath, ...]  # one per tomogram, same order
    annotations: tuple[Annotation, ...]  # those shown with the tomogram(s)
    files: tuple[FileInput, ...]  # their files, in annotation and file order
    # Catalogue paths of the run (Locations on an object store), and the precompute
    # folders (atomic writes rename into them).
    folders: tuple[TreePath, ...]

    def paths(self) -> tuple[TreePath, ...]:
        """Every file and folder whose change can change the state, without repeats."""
        paths: list[TreePath] = [*self.folders, *self.tomogram_summaries]
        paths += [failure_path(summary) for summary in self.tomogram_summaries]
        for file in self.files:
            paths += file.paths()
        return tuple(dict.fromkeys(paths))


def state_inputs(run: Run, tomogram: Tomogram | None, layout: AnyLayout) -> StateInputs:
    """The inputs of ``tomogram``'s state; with None, of every tomogram's state of ``run``."""
    if tomogram is not None:
        tomograms: tuple[Tomogram, ...] = (tomogram,)
        annotations = tuple(run.annotations_for(tomogram))
    else:
        tomograms = tuple(sorted(run.tomograms, key=lambda t: t.id))
        annotations = tuple(run.annotations)
    files = tuple(
        entry for a in annotations for f in a.files for entry in _file_inputs(run, a, f, layout)
    )
    spacings = {t.voxel_spacing for t in tomograms} | {a.voxel_spacing for a in annotations}
    folders: list[TreePath] = list(run.scanned_paths())
    for spacing in sorted(spacings):
        precompute_dir = layout.precompute_dir(run, spacing)
        folders += [precompute_dir.parent, precompute_dir]
    return StateInputs(
        tomograms=tomograms,
        tomogram_summaries=tuple(layout.tomogram_summary(run, t) for t in tomograms),
        annotations=annotations,
        files=files,
        folders=tuple(folders),
    )


def _file_inputs(
    run: Run, annotation: Annotation, file: AnnotationFile, layout: AnyLayout
) -> tuple[FileInput, ...]:
    if not annotation.is_converted(file):  # a twin or an unread format: no output
        return (FileInput(annotation, file, None, file.shape),)
    own = FileInput(
        annotation, file, layout.annotation_output(run, annotation, file.shape), file.shape
    )
    if file.shape != "OrientedPoint":
        return (own,)
    models = layout.oriented_mesh_output(run, annotation)
    return own, FileInput(annotation, file, models, ORIENTED_MESH)
