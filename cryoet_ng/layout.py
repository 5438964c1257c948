"""Where every output lives: the one module that decides a precompute output's path.

The portal's naming, under any output root (the data tree itself by default)::

    <out>/<dataset>/<run>/Reconstructions/VoxelSpacing<vs>/NeuroglancerPrecompute/
        <annotation_id>-<slug>-<version>_<output type>/        one precomputed output
        <annotation_id>-<slug>-<version>_<output type>.summary.json   its summary
        <annotation_id>-<slug>-<version>_<output type>.failed.json    its last run failed
        <tomogram_id>-tomogram.summary.json                    a tomogram's statistics
        <tomogram_id>-neuroglancer_config.json                 a tomogram's viewer state

The *output type* is the portal shape lower-cased (``point``, ``orientedpoint``,
``segmentationmask``...), or the name of an output derived from a shape (e.g.
``orientedmesh``). An annotation output lives in its annotation's own voxel spacing; a
tomogram's files in the tomogram's. ``precompute`` writes these paths, ``ngstate`` reads
them, ``validate`` walks them (:meth:`Layout.precompute_dirs`), the server watches them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryoet_ng.catalogue import voxel_spacing_dirname

if TYPE_CHECKING:
    from cryoet_ng.catalogue import Annotation, Run, Tomogram

RECONSTRUCTIONS = "Reconstructions"
PRECOMPUTE_DIR = "NeuroglancerPrecompute"
SUMMARY_SUFFIX = ".summary.json"
# Beside a summary: the last precompute of its input failed (cryoet_ng.failures).
FAILURE_SUFFIX = ".failed.json"
TOMOGRAM_SUMMARY = "-tomogram" + SUMMARY_SUFFIX
STATE_FILE = "-neuroglancer_config.json"


def output_name(annotation: Annotation, output_type: str) -> str:
    """``<id>-<slug>-<version>_<output type lower-cased>``: the portal's output folder name."""
    return f"{annotation.id}-{annotation.stem}_{output_type.lower()}"


def summary_path(output: Path) -> Path:
    """The summary of ``.../NeuroglancerPrecompute/<name>/`` is ``.../<name>.summary.json``."""
    return output.with_name(output.name + SUMMARY_SUFFIX)


def failure_path(summary: Path) -> Path:
    """``<name>.summary.json`` -> ``<name>.failed.json``: the failure record of that job."""
    name = summary.name
    stem = name[: -len(SUMMARY_SUFFIX)] if name.endswith(SUMMARY_SUFFIX) else name
    return summary.with_name(stem + FAILURE_SUFFIX)


def is_summary(path: Path) -> bool:
    return path.name.endswith(SUMMARY_SUFFIX)


def output_of_summary(summary: Path) -> Path:
    """The output folder a summary describes (none exists for a tomogram's summary)."""
    return summary.with_name(summary.name[: -len(SUMMARY_SUFFIX)])


@dataclass(frozen=True)
class Layout:
    """Every output path under one output root."""

    out_root: Path

    def spacing_dir(self, run: Run, spacing: float) -> Path:
        """``<out>/<dataset>/<run>/Reconstructions/VoxelSpacing<vs>``."""
        return (
            self.out_root
            / run.dataset_id
            / run.name
            / RECONSTRUCTIONS
            / voxel_spacing_dirname(spacing)
        )

    def precompute_dir(self, run: Run, spacing: float) -> Path:
        """``<spacing dir>/NeuroglancerPrecompute``: every output of one run and spacing."""
        return self.spacing_dir(run, spacing) / PRECOMPUTE_DIR

    def annotation_output(self, run: Run, annotation: Annotation, output_type: str) -> Path:
        """Output folder of one annotation file's conversion (see the module docstring)."""
        folder = self.precompute_dir(run, annotation.voxel_spacing)
        return folder / output_name(annotation, output_type)

    def annotation_summary(self, run: Run, annotation: Annotation, output_type: str) -> Path:
        return summary_path(self.annotation_output(run, annotation, output_type))

    def tomogram_summary(self, run: Run, tomogram: Tomogram) -> Path:
        """``<tomogram_id>-tomogram.summary.json``: contrast limits and statistics."""
        folder = self.precompute_dir(run, tomogram.voxel_spacing)
        return folder / f"{tomogram.id}{TOMOGRAM_SUMMARY}"

    def state_file(self, run: Run, tomogram: Tomogram) -> Path:
        """``<tomogram_id>-neuroglancer_config.json``, as the portal writes it."""
        return self.precompute_dir(run, tomogram.voxel_spacing) / f"{tomogram.id}{STATE_FILE}"

    def precompute_dirs(self) -> Iterator[Path]:
        """Every ``NeuroglancerPrecompute`` folder under the root, in sorted order, without
        descending into data folders (``*.zarr``) or into the precompute folders."""
        for folder, dirs, _ in os.walk(self.out_root):
            if os.path.basename(folder) == PRECOMPUTE_DIR:
                dirs.clear()
                yield Path(folder)
                continue
            dirs[:] = sorted(d for d in dirs if not d.endswith(".zarr"))
