"""Lay out the whole sample tree: datasets, runs, tomograms, alignments, annotations.

Three runs cover the cases the rest of the project must handle:
- ``10000/TS_026``: every annotation shape, ground truth next to a prediction of the same
  object, a container mask, a slug that differs from the object name, a multi-shape
  annotation, and one annotation in a 2x binned ``VoxelSpacing26.960`` folder;
- ``10000/TS_027``: a tomogram with no annotations at all;
- ``10001/TS_100``: a crowded automated prediction (20k points at test size, 200k at demo).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from cryoet_ng.atomic import atomic_directory
from cryoet_ng.catalogue import voxel_spacing_dirname
from cryoet_ng.sample import metadata as md
from cryoet_ng.sample.annotations import Target, write_annotation
from cryoet_ng.sample.files import write_bytes, write_json
from cryoet_ng.sample.objects import binned_annotations, crowded_annotations, full_annotations
from cryoet_ng.sample.omezarr import Pyramid, downsample_mean, write_mrc, write_omezarr
from cryoet_ng.sample.scene import Scene, make_scene
from cryoet_ng.sample.spec import (
    BINNED_SPACING,
    COMMUNITY_DEPOSITION,
    DATASET_DEPOSITION,
    SIZES,
    VOXEL_SPACING,
    RunRecord,
    SampleManifest,
    SizeName,
    SizeSpec,
    TomogramRecord,
)
from cryoet_ng.sample.volume import (
    cell_distance_field,
    finish_tomogram,
    free_points,
    render_structures,
)
from cryoet_ng.vectors import triple

MANIFEST_NAME = "sample-manifest.json"  # also marks a folder as ours to overwrite
TOMOGRAM_ID = "100"
ALIGNMENT_ID = "100"


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
        for dataset_id, (title, organism, taxon) in DATASETS.items():
            manifest.datasets.append(dataset_id)
            write_json(
                root / dataset_id / "dataset_metadata.json",
                md.dataset_metadata(dataset_id, title, organism, taxon),
            )
        for deposition in (DATASET_DEPOSITION, COMMUNITY_DEPOSITION):
            folder = root / "depositions_metadata" / str(deposition)
            write_json(folder / "deposition_metadata.json", md.deposition_metadata(deposition))
        for index, plan in enumerate(RUNS):
            # One independent stream per run: runs do not shift when another changes.
            rng = np.random.default_rng([seed, index])
            _write_run(root, plan, spec, rng, manifest)
        write_json(root / MANIFEST_NAME, asdict(manifest))
    return manifest


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


def _key_photos(volume: np.ndarray) -> tuple[bytes, bytes]:
    """Central z slice as snapshot (mean +- 3 sd contrast, dense = dark) and 128 px thumbnail."""
    plane = volume[volume.shape[0] // 2].astype(np.float64)
    lo, hi = plane.mean() - 3 * plane.std(), plane.mean() + 3 * plane.std()
    image = Image.fromarray(np.clip((plane - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8))
    encoded = []
    for img in (image, image.resize((128, 128), Image.Resampling.BILINEAR)):
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded[0], encoded[1]


def _write_run(
    root: Path, plan: RunPlan, spec: SizeSpec, rng: np.random.Generator, manifest: SampleManifest
) -> None:
    run_rel = f"{plan.dataset_id}/{plan.name}"
    write_json(root / run_rel / "run_metadata.json", md.run_metadata(plan.name))
    scene = make_scene(spec, rng)
    size_xyz = scene.size_xyz

    # Alignment: the IMOD files are stubs; the metadata carries the volume in Å.
    align_rel = f"{run_rel}/Alignments/{ALIGNMENT_ID}"
    tlt = "".join(f"{-60.0 + 3.0 * i:.2f}\n" for i in range(41)).encode()
    xf = b"".join(b"1.0 0.0 0.0 1.0 0.0 0.0\n" for _ in range(41))
    write_bytes(root / align_rel / f"{plan.name}.tlt", tlt)
    write_bytes(root / align_rel / f"{plan.name}.xf", xf)
    alignment = f"{align_rel}/alignment_metadata.json"
    write_json(
        root / alignment,
        md.alignment_metadata(
            size_xyz, VOXEL_SPACING, [f"{align_rel}/{plan.name}.{e}" for e in ("xf", "tlt")]
        ),
    )
    manifest.runs.append(RunRecord(plan.dataset_id, plan.name, alignment))

    # Tomogram.
    distance = cell_distance_field(scene)  # shared by the tomogram and the masks
    structures = render_structures(scene, distance, rng)
    crowd = _crowd(scene, structures, spec.many_points if plan.kind == "crowded" else 0, rng)
    spare = _crowd(scene, structures, 64, rng)  # free cytoplasm, for false-positive picks
    volume = finish_tomogram(scene, structures, crowd, rng)
    vs_rel = f"{run_rel}/Reconstructions/{voxel_spacing_dirname(VOXEL_SPACING)}"
    tomo_rel = f"{vs_rel}/Tomograms/{TOMOGRAM_ID}"
    zarr_rel = f"{tomo_rel}/{plan.name}.zarr"
    write_omezarr(root / zarr_rel, Pyramid.build(volume, VOXEL_SPACING, downsample_mean))
    # A float32 MRC twin is as big as the raw volume: at demo size only the first run has one.
    with_mrc = spec.name == "test" or plan is RUNS[0]
    mrc_rel = f"{tomo_rel}/{plan.name}.mrc" if with_mrc else None
    if mrc_rel is not None:
        write_mrc(root / mrc_rel, volume, VOXEL_SPACING, "cryoet-ng sample tomogram")
    snapshot, thumbnail = _key_photos(volume)
    images_rel = f"{vs_rel}/Images/{TOMOGRAM_ID}"
    write_bytes(root / images_rel / "key-photo-snapshot.png", snapshot)
    write_bytes(root / images_rel / "key-photo-thumbnail.png", thumbnail)
    if plan is RUNS[0] or plan.name == "TS_100":
        write_bytes(root / plan.dataset_id / "Images" / "snapshot.png", snapshot)
        write_bytes(root / plan.dataset_id / "Images" / "thumbnail.png", thumbnail)
    precompute_rel = f"{vs_rel}/NeuroglancerPrecompute"
    paths = {
        "omezarr_dir": zarr_rel,
        "mrc_file": mrc_rel,
        "alignment": alignment,
        "neuroglancer_config": f"{precompute_rel}/{TOMOGRAM_ID}-neuroglancer_config.json",
        "snapshot": f"{images_rel}/key-photo-snapshot.png",
        "thumbnail": f"{images_rel}/key-photo-thumbnail.png",
    }
    tomo_meta = md.tomogram_metadata(plan.name, VOXEL_SPACING, size_xyz, paths)
    write_json(root / tomo_rel / "tomogram_metadata.json", tomo_meta)
    manifest.tomograms.append(
        TomogramRecord(
            dataset_id=plan.dataset_id,
            run_name=plan.name,
            tomogram_id=TOMOGRAM_ID,
            voxel_spacing=VOXEL_SPACING,
            size_xyz=size_xyz,
            omezarr_dir=zarr_rel,
            mrc_file=mrc_rel,
            is_visualization_default=tomo_meta["is_visualization_default"],
            alignment_metadata_path=alignment,
        )
    )
    del volume

    # Annotations, ids from 100 per VoxelSpacing folder.
    if plan.kind == "empty":
        return
    annotations_rel = f"{vs_rel}/Annotations"
    if plan.kind == "full":
        specs = full_annotations(scene, distance, annotations_rel, spare, rng)
    else:
        specs = crowded_annotations(scene, crowd)
    target = Target(
        root=root,
        folder=annotations_rel,
        dataset_id=plan.dataset_id,
        run_name=plan.name,
        voxel_spacing=VOXEL_SPACING,
        size_xyz=size_xyz,
        alignment=alignment,
        mrc_max_bytes=spec.mrc_max_bytes,
    )
    for offset, ann in enumerate(specs):
        folder = f"{annotations_rel}/{100 + offset}"
        manifest.annotations.append(write_annotation(replace(target, folder=folder), ann))
    if plan.kind == "full":
        binned_rel = f"{run_rel}/Reconstructions/{voxel_spacing_dirname(BINNED_SPACING)}"
        binned = replace(
            target,
            voxel_spacing=BINNED_SPACING,
            size_xyz=triple(-(-n // 2) for n in size_xyz),  # = zarr level 1 of the tomogram
        )
        for offset, ann in enumerate(binned_annotations(scene)):
            folder = f"{binned_rel}/Annotations/{100 + offset}"
            manifest.annotations.append(write_annotation(replace(binned, folder=folder), ann))
