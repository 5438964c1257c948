"""Lay out the whole sample tree: datasets, runs, tomograms, alignments, annotations.

Three runs cover the cases the rest of the project must handle:
- ``10000/TS_026``: every annotation shape, ground truth next to a prediction of the same
  object, a container mask, a slug that differs from the object name, a multi-shape
  annotation, and one annotation in a 2x binned ``VoxelSpacing26.960`` folder;
- ``10000/TS_027``: a tomogram with no annotations at all;
- ``10001/TS_100``: a crowded automated prediction (20k points at test size, 200k at demo).

Each run's scene is synthesised here; the files are written by
:class:`~cryoet_ng.sample.builder.TreeBuilder`, which tests and benchmarks use too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cryoet_ng.atomic import atomic_directory
from cryoet_ng.sample.builder import RunRef, TreeBuilder
from cryoet_ng.sample.files import write_json
from cryoet_ng.sample.objects import binned_annotations, crowded_annotations, full_annotations
from cryoet_ng.sample.scene import Scene, make_scene
from cryoet_ng.sample.spec import (
    BINNED_SPACING,
    COMMUNITY_DEPOSITION,
    DATASET_DEPOSITION,
    SIZES,
    VOXEL_SPACING,
    SampleManifest,
    SizeName,
    SizeSpec,
)
from cryoet_ng.sample.volume import (
    cell_distance_field,
    finish_tomogram,
    free_points,
    render_structures,
)

MANIFEST_NAME = "sample-manifest.json"  # also marks a folder as ours to overwrite


@dataclass(frozen=True)
class RunPlan:
    dataset_id: str
    name: str
    kind: str  # "full", "empty" or "crowded"


RUNS = (
    RunPlan("10000", "TS_026", "full"),
    RunPlan("10000", "TS_027", "empty"),
    RunPlan("10001", "TS_100", "crowded"),
)
DATASETS = {
    "10000": ("Synthetic fission-yeast-like cells", "Schizosaccharomyces pombe", 4896),
    "10001": ("Synthetic crowded cells", "Chlamydomonas reinhardtii", 3055),
}


def generate(out_dir: Path, seed: int = 0, size: SizeName = "test") -> SampleManifest:
    """Write the sample tree to ``out_dir`` (replaced atomically) and return its manifest.

    Refuses to replace a non-empty folder that was not written by this generator.
    """
    spec = SIZES[size]
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).exists():
        raise FileExistsError(f"{out_dir}: not empty and not a sample tree; refusing to replace")
    manifest = SampleManifest(seed=seed, size=size)
    with atomic_directory(out_dir) as root:
        tree = TreeBuilder(root)
        for dataset_id, (title, organism, taxon) in DATASETS.items():
            manifest.datasets.append(dataset_id)
            tree.dataset(dataset_id, title, organism, taxon)
        for deposition in (DATASET_DEPOSITION, COMMUNITY_DEPOSITION):
            tree.deposition(deposition)
        for index, plan in enumerate(RUNS):
            write_run(tree, plan, spec, run_rng(seed, index), manifest)
        write_json(root / MANIFEST_NAME, asdict(manifest))
    return manifest


def run_rng(seed: int, index: int) -> np.random.Generator:
    """One independent stream per run: runs do not shift when another changes."""
    return np.random.default_rng([seed, index])


def _crowd(
    scene: Scene, structures: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` whole-voxel points in free cytoplasm, on a jittered grid (>= 2 apart)."""
    if count == 0:
        return np.zeros((0, 3))
    size = np.array(scene.size_xyz, dtype=np.float64)
    probe = np.round(rng.uniform(0, 1, (20000, 3)) * (size - 1))
    free_volume = np.mean(free_points(scene, structures, probe)) * np.prod(size)
    step = max(2.0, (free_volume / (1.5 * count)) ** (1 / 3))
    while True:
        axes = [np.arange(0, n - 1, step) for n in size]
        cells = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        jitter = max(0.0, step / 2 - 1.0)
        points = np.round(cells + step / 2 + rng.uniform(-jitter, jitter, cells.shape))
        points = points[np.all(points <= size - 1, axis=1)]
        points = points[free_points(scene, structures, points)]
        if len(points) >= count or step <= 1.0:
            break
        step *= 0.9
    chosen = np.sort(rng.choice(len(points), size=min(count, len(points)), replace=False))
    return points[chosen]


def write_run(
    tree: TreeBuilder,
    plan: RunPlan,
    spec: SizeSpec,
    rng: np.random.Generator,
    manifest: SampleManifest,
) -> tuple[RunRef, Scene]:
    """One run of the sample (``plan.kind`` says which), recorded in ``manifest``."""
    scene = make_scene(spec, rng)
    run = tree.run(plan.dataset_id, plan.name, scene.size_xyz, VOXEL_SPACING)
    manifest.runs.append(run.record())

    # Tomogram.
    distance = cell_distance_field(scene)  # shared by the tomogram and the masks
    structures = render_structures(scene, distance, rng)
    crowd = _crowd(scene, structures, spec.many_points if plan.kind == "crowded" else 0, rng)
    spare = _crowd(scene, structures, 64, rng)  # free cytoplasm, for false-positive picks
    volume = finish_tomogram(scene, structures, crowd, rng)
    # A float32 MRC twin is as big as the raw volume: at demo size only the first run has one.
    mrc = spec.name == "test" or plan is RUNS[0]
    manifest.tomograms.append(tree.tomogram(run, volume, mrc=mrc))
    if plan is RUNS[0] or plan.name == "TS_100":
        tree.dataset_photos(plan.dataset_id, volume)
    del volume

    # Annotations, ids from 100 per VoxelSpacing folder.
    if plan.kind == "empty":
        return run, scene
    if plan.kind == "full":
        annotations_rel = f"{run.spacing_folder(VOXEL_SPACING)}/Annotations"
        specs = full_annotations(scene, distance, annotations_rel, spare, rng)
    else:
        specs = crowded_annotations(scene, crowd)
    for ann in specs:
        manifest.annotations.append(tree.annotation(run, ann, mrc_max_bytes=spec.mrc_max_bytes))
    if plan.kind == "full":
        for ann in binned_annotations(scene):
            record = tree.annotation(
                run, ann, voxel_spacing=BINNED_SPACING, mrc_max_bytes=spec.mrc_max_bytes
            )
            manifest.annotations.append(record)
    return run, scene
