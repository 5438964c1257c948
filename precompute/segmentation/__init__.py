"""Segmentation masks -> Neuroglancer precomputed segmentation (pyramid, meshes, properties).

``convert(job, options)`` writes ``job.output`` atomically::

    info                  neuroglancer_multiscale_volume, uint32, compressed_segmentation
    <scale key>/          one folder per scale (sharded above options.shard_min_voxels)
    mesh/                 neuroglancer_multilod_draco, sharded
    segment_properties/   inline labels, and the annotation's description, tags, authors

and returns the summary (kind ``"segmentation"``; the runner writes it beside the folder).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from cryoet_ng import atomic
from cryoet_ng.config import PrecomputeConfig
from cryoet_ng.summaries import Grid, Summary
from precompute.jobs import AnnotationJob
from precompute.segmentation.meshes import MESH_DIR, MeshOptions, write_meshes
from precompute.segmentation.properties import PROPERTIES_DIR, write_segment_properties
from precompute.segmentation.source import MaskSource, open_mask
from precompute.segmentation.stats import VolumeStats
from precompute.segmentation.volume import CHUNK, PyramidWriter, Scale, plan_scales, volume_info

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
        _write_pyramid(source, PyramidWriter(tmp, scales), stats)
        labels = list(stats.labels)
        write_meshes(tmp, scales, labels, MeshOptions(num_lods=options.mesh_lods))
        instance = job.shape == INSTANCE_SHAPE
        write_segment_properties(tmp, job.object_name, labels, instance, job.about)
    return _summary(job, source, stats, scales, extent)


def _write_pyramid(source: MaskSource, writer: PyramidWriter, stats: VolumeStats) -> None:
    """Stream z-slabs (one source chunk thick, so each chunk is decoded once), processed in
    pieces one output chunk thick. Three threads overlap: the next slab is read while this one
    is counted (stats) on a second thread and downsampled on this one; tensorstore converts to
    uint32, encodes and writes on its own pool."""
    nz = source.shape[0]
    step = max(CHUNK, source.read_step // CHUNK * CHUNK)
    starts = list(range(0, nz, step))
    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as counter:
        ahead = reader.submit(source.read, 0, min(step, nz))
        for i, z0 in enumerate(starts):
            slab = ahead.result()
            if i + 1 < len(starts):
                nxt = starts[i + 1]
                ahead = reader.submit(source.read, nxt, min(nxt + step, nz))
            counted = []
            for a in range(0, len(slab), CHUNK):
                piece = slab[a : a + CHUNK]
                counted.append(counter.submit(stats.add, piece, z0 + a))
                writer.push(0, piece, final=z0 + a + len(piece) == nz)
                writer.wait(keep=len(writer.scales))
            for done in counted:
                done.result()
            del slab
    writer.wait()


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
