"""Where outputs live: the portal's NeuroglancerPrecompute naming, under any output root."""

from __future__ import annotations

from pathlib import Path

from cryoet_ng.catalogue import Annotation, Run, Tomogram, voxel_spacing_dirname
from cryoet_ng.summaries import summary_path, tomogram_summary_path


def precompute_dir(out_root: Path, run: Run, spacing: float) -> Path:
    """``<out>/<dataset>/<run>/Reconstructions/VoxelSpacing<vs>/NeuroglancerPrecompute``."""
    return (
        out_root
        / run.dataset_id
        / run.name
        / "Reconstructions"
        / voxel_spacing_dirname(spacing)
        / "NeuroglancerPrecompute"
    )


def annotation_output(out_root: Path, run: Run, annotation: Annotation, shape: str) -> Path:
    """Output folder of one (annotation, shape), in the annotation's own voxel spacing."""
    folder = precompute_dir(out_root, run, annotation.voxel_spacing)
    return folder / annotation.precompute_dirname(shape)


def annotation_summary(out_root: Path, run: Run, annotation: Annotation, shape: str) -> Path:
    return summary_path(annotation_output(out_root, run, annotation, shape))


def tomogram_summary(out_root: Path, run: Run, tomogram: Tomogram) -> Path:
    return tomogram_summary_path(precompute_dir(out_root, run, tomogram.voxel_spacing), tomogram.id)


def state_file(out_root: Path, run: Run, tomogram: Tomogram) -> Path:
    """``<tomogram_id>-neuroglancer_config.json``, as the portal writes it."""
    folder = precompute_dir(out_root, run, tomogram.voxel_spacing)
    return folder / f"{tomogram.id}-neuroglancer_config.json"
