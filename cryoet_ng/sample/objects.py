"""The annotations of each sample run, derived from the scene, with curator-style flags.

Visibility flags of TS_026 follow what a curator sets in a dataset YAML (spec section 5,
dataset 10000): ground-truth picks on, a prediction of the same object off, the cytoplasm
container off (it would cover the picks), membranes and vesicles on. TS_100 is a run nobody
curated: every flag is false, the portal ingestion's default (ngstate's uncurated rule).
"""

from __future__ import annotations

import numpy as np

from cryoet_ng.sample.annotations import (
    AnnotationObject,
    AnnotationSpec,
    Source,
    annotation_spec,
)
from cryoet_ng.sample.meshes import atp_synthase_template, membrane_surface
from cryoet_ng.sample.metadata import COMMUNITY_AUTHORS, DATASET_AUTHORS
from cryoet_ng.sample.omezarr import Pyramid, downsample_any, downsample_nearest
from cryoet_ng.sample.scene import RIBOSOME_RADIUS, Scene, ellipsoid_area, surface_points
from cryoet_ng.sample.spec import (
    BINNED_SPACING,
    COMMUNITY_DEPOSITION,
    DATASET_DEPOSITION,
    VOXEL_SPACING,
)
from cryoet_ng.sample.volume import (
    cytoplasm_mask,
    membrane_mask,
    microtubule_mask_binned,
    vesicle_labels,
)

# The rendered ribosome spans 2 x RIBOSOME_RADIUS voxels; its metadata says so (in Å), so the
# sample exercises all three diameter sources: metadata (ribosome), table (nucleosome),
# fallback (ATP synthase). See cryoet_ng/particles.py.
RIBOSOME = AnnotationObject(
    "GO:0022626", "cytosolic ribosome", diameter=round(2 * RIBOSOME_RADIUS * VOXEL_SPACING, 1)
)
ATP_SYNTHASE = AnnotationObject(
    "GO:0045259", "proton-transporting ATP synthase complex", state="membrane-bound"
)
MEMBRANE = AnnotationObject("GO:0016020", "membrane")
# Object "membrane" whose short description becomes the slug (membrain_seg_prediction).
MEMBRAIN = AnnotationObject("GO:0016020", "membrane", description="MemBrain-seg prediction")
CYTOPLASM = AnnotationObject(
    "GO:0005737",
    "cytoplasm",
    description="Everything inside the plasma membrane: one large container mask",
)
VESICLE = AnnotationObject("GO:0031982", "vesicle")
# The membrane as a triangle mesh (slug plasma_membrane_surface).
MEMBRANE_SURFACE = AnnotationObject("GO:0016020", "membrane", description="plasma membrane surface")
MICROTUBULE = AnnotationObject("GO:0005874", "microtubule")
NUCLEOSOME = AnnotationObject("GO:0000786", "nucleosome")


def _manual(obj: AnnotationObject, ingest: str, method: str, *sources: Source) -> AnnotationSpec:
    """A ground-truth annotation by the dataset authors."""
    return annotation_spec(
        obj, *sources, ground_truth=True, curator_recommended=True, ingest_id=ingest, method=method
    )


def _clip(points: np.ndarray, size_xyz: tuple[int, int, int]) -> np.ndarray:
    return np.clip(points, 0, np.asarray(size_xyz) - 1)


def _in_bounds(points: np.ndarray, size_xyz: tuple[int, int, int]) -> np.ndarray:
    return np.all((points >= 0) & (points <= np.asarray(size_xyz) - 1), axis=1)


def _prediction(
    scene: Scene, truth_path: str, spare: np.ndarray, rng: np.random.Generator
) -> AnnotationSpec:
    """Ribosome picks by a model: ~85% recall, a few false positives, small jitter."""
    truth = scene.ribosomes
    found = rng.random(len(truth)) < 0.85
    hits = _clip(truth[found] + rng.normal(0, 0.8, (int(found.sum()), 3)), scene.size_xyz)
    false = spare[: max(1, round(0.12 * len(truth)))]
    points = np.round(np.vstack([hits, false]), 2)
    tp, fp = len(hits), len(false)
    return AnnotationSpec(
        obj=RIBOSOME,
        ingest_id="cytosolic-ribosome-2",
        method_type="automated",
        ground_truth=False,
        curator_recommended=False,
        method="template matching + 3D CNN",
        software="pyTOM + DeePiCt",
        deposition_id=COMMUNITY_DEPOSITION,
        authors=COMMUNITY_AUTHORS,
        sources=(Source("Point", False, points=points),),
        confidence={
            "precision": round(100.0 * tp / (tp + fp), 2),
            "recall": round(100.0 * tp / len(truth), 2),
            "ground_truth_used": truth_path,
        },
        links=({"link": "https://example.org/deepict", "link_type": "source_code"},),
    )


def _membrane_trace(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Points every ~6 voxels on the cell membrane (instance 1) and each vesicle (2, 3, ...)."""
    n = int(ellipsoid_area(scene.cell_axes) / 36)
    cell, _ = surface_points(scene.cell_centre, scene.cell_axes, n)
    parts, ids = [cell], [np.ones(len(cell), np.int64)]
    for i, (centre, radius) in enumerate(
        zip(scene.vesicle_centres, scene.vesicle_radii, strict=True)
    ):
        sphere, _ = surface_points(centre, np.full(3, radius), max(12, int(radius**2 / 3)))
        parts.append(sphere)
        ids.append(np.full(len(sphere), i + 2))
    points, instance_ids = np.vstack(parts), np.concatenate(ids)
    keep = _in_bounds(points, scene.size_xyz)
    return np.round(points[keep], 2), instance_ids[keep]


def full_annotations(
    scene: Scene,
    d: np.ndarray,
    annotations_rel: str,
    spare: np.ndarray,
    rng: np.random.Generator,
) -> list[AnnotationSpec]:
    """TS_026 at 13.48 Å, ids 100, 101, ... in list order.

    ``annotations_rel``: the bucket-relative ``Annotations`` folder (the prediction names
    the ground-truth file it was scored against); ``spare``: free cytoplasm points for
    false positives; ``d``: the cell distance field.
    """
    truth = _manual(
        RIBOSOME,
        "cytosolic-ribosome-1",
        "manual picking in IMOD",
        Source("Point", True, points=scene.ribosomes.astype(np.float64)),
    )
    truth_path = f"{annotations_rel}/100/{truth.stem()}_point.ndjson"
    trace, instance_ids = _membrane_trace(scene)
    labels = vesicle_labels(scene)
    return [
        truth,
        _prediction(scene, truth_path, spare, rng),
        AnnotationSpec(
            obj=ATP_SYNTHASE,
            ingest_id="atp-synthase-1",
            method_type="hybrid",
            ground_truth=False,
            curator_recommended=True,
            method="template matching + subtomogram averaging, manually curated",
            software="STOPGAP + RELION",
            deposition_id=DATASET_DEPOSITION,
            authors=DATASET_AUTHORS,
            sources=(
                Source(
                    "OrientedPoint",
                    True,
                    points=scene.atp_centres,
                    rotations=scene.atp_rotations,
                    template=atp_synthase_template(),
                ),
            ),
        ),
        _manual(
            MEMBRANE,
            "membrane-1",
            "membranes traced by hand, one instance per membrane",
            Source("InstanceSegmentation", False, points=trace, instance_ids=instance_ids),
        ),
        _manual(
            CYTOPLASM,
            "cytoplasm-1",
            "manual segmentation in Amira",
            Source(
                "SegmentationMask",
                False,
                pyramid=Pyramid.build(cytoplasm_mask(d), VOXEL_SPACING, downsample_any),
            ),
        ),
        AnnotationSpec(
            obj=MEMBRAIN,
            ingest_id="membrane-2",
            method_type="automated",
            ground_truth=False,
            curator_recommended=True,
            method="MemBrain-seg v9b, threshold 0",
            software="MemBrain-seg",
            deposition_id=DATASET_DEPOSITION,
            authors=DATASET_AUTHORS,
            sources=(
                Source(
                    "SegmentationMask",
                    True,
                    pyramid=Pyramid.build(membrane_mask(scene, d), VOXEL_SPACING, downsample_any),
                ),
            ),
        ),
        _manual(
            VESICLE,
            "vesicle-1",
            "manual segmentation; centres from the segmentation",
            Source(
                "InstanceSegmentationMask",
                True,
                pyramid=Pyramid.build(labels, VOXEL_SPACING, downsample_nearest),
            ),
            Source("Point", False, points=scene.vesicle_centres.astype(np.float64)),
        ),
        AnnotationSpec(
            obj=MEMBRANE_SURFACE,
            ingest_id="membrane-3",
            method_type="automated",
            ground_truth=False,
            curator_recommended=True,
            method="MemBrain-seg v9b, mid-plane surface by marching cubes",
            software="MemBrain-seg + surface_dice",
            deposition_id=DATASET_DEPOSITION,
            authors=DATASET_AUTHORS,
            sources=(Source("TriangularMesh", True, mesh=membrane_surface(scene)),),
        ),
    ]


def binned_annotations(scene: Scene) -> list[AnnotationSpec]:
    """TS_026 at 26.96 Å (2x binned grid): the microtubule, as segmented at bin 2."""
    mask = microtubule_mask_binned(scene)
    return [
        _manual(
            MICROTUBULE,
            "microtubule-1",
            "manual segmentation on the bin-2 tomogram",
            Source(
                "SegmentationMask",
                True,
                pyramid=Pyramid.build(mask, BINNED_SPACING, downsample_any),
            ),
        )
    ]


def crowded_annotations(scene: Scene, crowd: np.ndarray) -> list[AnnotationSpec]:
    """TS_100: ground-truth ribosomes and a huge automated prediction of small particles,
    uncurated (every flag false, as the portal's ingestion writes when nobody chose)."""
    return [
        _manual(
            RIBOSOME,
            "cytosolic-ribosome-1",
            "manual picking in IMOD",
            Source("Point", False, points=scene.ribosomes.astype(np.float64)),
        ),
        AnnotationSpec(
            obj=NUCLEOSOME,
            ingest_id="nucleosome-1",
            method_type="automated",
            ground_truth=False,
            curator_recommended=False,
            method="template matching, every peak above a low threshold",
            software="pytom-match-pick",
            deposition_id=COMMUNITY_DEPOSITION,
            authors=COMMUNITY_AUTHORS,
            sources=(Source("Point", False, points=crowd.astype(np.float64)),),
        ),
    ]
