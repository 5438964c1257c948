"""Segmentation masks -> Neuroglancer precomputed segmentation (pyramid, meshes, properties).

``convert(job, options)`` writes ``job.output`` atomically::

    info                  neuroglancer_multiscale_volume, uint32, compressed_segmentation
    <scale key>/          one folder per scale (sharded above options.shard_min_voxels)
    mesh/                 neuroglancer_multilod_draco, sharded
    segment_properties/   inline labels, and the annotation's description, tags, authors

and returns the summary (kind ``"segmentation"``; the runner writes it beside the folder).
"""

from __future__ import annotations

from cryoet_ng import atomic
from cryoet_ng.config import PrecomputeConfig
from cryoet_ng.summaries import Grid, Summary
from precompute.jobs import AnnotationJob
from precompute.segmentation.meshes import MESH_DIR, MeshOptions, write_meshes
from precompute.segmentation.properties import PROPERTIES_DIR, write_segment_properties
from precompute.segmentation.pyramid import write_pyramid
from precompute.segmentation.source import MaskSource, open_mask
from precompute.segmentation.stats import VolumeStats
from precompute.segmentation.volume import Scale, plan_scales, volume_info

__all__ = ["convert"]

ANGSTROM = 1e-10
INSTANCE_SHAPE = "InstanceSegmentationMask"


def convert(job: AnnotationJob, options: PrecomputeConfig) -> Summary:
    """Convert one mask; raises InputError (nothing written) for bad input."""
    source = open_mask(job.source, options, job.volume_size_xyz)
    nz, ny, nx = source.shape
    spacing_m = job.voxel_spacing * ANGSTROM
    extent = job.extent_m or (nx * spacing_m, ny * spacing_m, nz * spacing_m)
    # Exact nm (Å / 10): no rounding to whole nm, so no correcting transform is needed.
    scales = plan_scales((nx, ny, nz), job.voxel_spacing / 10, options.shard_min_voxels)
    stats = VolumeStats(source.shape, spacing_m, Grid.for_extent(extent))
    with atomic.atomic_directory(job.output) as tmp:
        extra = {"mesh": MESH_DIR, "segment_properties": PROPERTIES_DIR}
        atomic.write_json(tmp / "info", volume_info(scales, extra))
        write_pyramid(tmp, scales, source.read, stats.add, options.volume_brick)
        labels = list(stats.labels)
        mesh_options = MeshOptions(num_lods=options.mesh_lods, workers=options.workers)
        write_meshes(tmp, scales, labels, mesh_options, stats.content_box())
        instance = job.shape == INSTANCE_SHAPE
        write_segment_properties(tmp, job.object_name, labels, instance, job.about)
    return _summary(job, source, stats, scales, extent)


def _summary(
    job: AnnotationJob,
    source: MaskSource,
    stats: VolumeStats,
    scales: list[Scale],
    extent: tuple[float, float, float],
) -> Summary:
    nz, ny, nx = source.shape
    notes = []
    if source.resampled:
        notes.append(f"resampled (nearest neighbour) from z, y, x {list(source.native_shape)}")
    if source.threshold is not None:
        notes.append(f"float mask thresholded at > {source.threshold}")
    extra = {
        "shape": [nx, ny, nz],
        "annotation_id": job.annotation_id,
        "output": job.output.name,
        "source": str(job.source),
        "voxel_spacing": job.voxel_spacing,
        "scales": [
            {"key": s.key, "size": list(s.size), "resolution_nm": list(s.resolution)}
            for s in scales
        ],
    }
    if notes:
        extra["notes"] = notes
    return Summary(
        kind="segmentation",
        count=stats.count,
        bounds=stats.bounds_m(),
        occupancy=stats.occupancy(extent),
        labels=stats.labels,
        extra=extra,
    )
