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
from pathlib import Path

from cryoet_ng.catalogue import Annotation, AnnotationFile, Run, Tomogram
from cryoet_ng.layout import Layout, failure_path, summary_path
from cryoet_ng.store import TreePath


@dataclass(frozen=True)
class FileInput:
    """One annotation file and, when one is precomputed from it, its output folder."""

    annotation: Annotation
    file: AnnotationFile
    output: Path | None  # None: nothing is precomputed from this file

    def paths(self) -> tuple[Path, ...]:
        """The output folder, its summary, ``info`` file and failure record (none without an
        output)."""
        if self.output is None:
            return ()
        summary = summary_path(self.output)
        return (self.output, summary, self.output / "info", failure_path(summary))


@dataclass(frozen=True)
class StateInputs:
    tomograms: tuple[Tomogram, ...]
    tomogram_summaries: tuple[Path, ...]  # one per tomogram, same order
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


def state_inputs(run: Run, tomogram: Tomogram | None, layout: Layout) -> StateInputs:
    """The inputs of ``tomogram``'s state; with None, of every tomogram's state of ``run``."""
    if tomogram is not None:
        tomograms: tuple[Tomogram, ...] = (tomogram,)
        annotations = tuple(run.annotations_for(tomogram))
    else:
        tomograms = tuple(sorted(run.tomograms, key=lambda t: t.id))
        annotations = tuple(run.annotations)
    files = tuple(
        FileInput(a, f, layout.annotation_output(run, a, f.shape) if f.is_precomputable else None)
        for a in annotations
        for f in a.files
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
