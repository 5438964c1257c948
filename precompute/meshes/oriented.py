"""Particle models at oriented picks: a glb template + OrientedPoint ndjson -> instanced mesh.

Placement is the portal encoder's (``encode_oriented_mesh`` as the backend calls it): the
template is in Å, converted to voxels of the annotation's spacing (the backend passes
``data_scale_in_nm = voxel_spacing / 10`` after scaling Å to nm), then rotated by the
pick's ``xyz_rotation_matrix`` and moved to its location: ``R @ v + location``.

Levels of detail (what the portal does, and what this does instead):

* finest: the template itself, at every pick, unless picks x triangles exceeds
  ``meshes.instance_faces``; then the template is simplified to fit (the portal's rule);
* coarsest: the template simplified until picks x triangles fits
  ``meshes.first_view_faces`` (never below ``meshes.min_faces``), since the viewer loads
  this level for the whole tomogram first. The portal's coarsest level is its finest
  simplified twice, about 2.5 M triangles at every pick for 10,000 picks of a 5,000
  triangle model, all in one node;
* levels between: ``meshes.reduction`` times fewer triangles each (more when
  ``meshes.lods`` is smaller than needed).

One segment (id 1) holds every pick, in an octree over the picks: level-0 nodes are cubes
that hold about ``meshes.node_faces`` triangles (no smaller than two model diameters, nor
than what leaves 4 coarsest-level nodes along the longest axis), so a zoomed-in view loads
full detail only nearby. Models that cross a node (or, above level 0, a child) boundary
are cut there. Vertices of all picks of a batch are transformed at once (one einsum).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryoet_ng import atomic
from cryoet_ng.config import MeshConfig, PrecomputeConfig
from cryoet_ng.summaries import Grid, Summary
from precompute.errors import InputError
from precompute.meshes.cells import Cell, place_by_cells
from precompute.meshes.glb import TriangleMesh, read_glb
from precompute.meshes.lods import Levels, build_levels, face_targets
from precompute.meshes.occupancy import instance_occupancy
from precompute.meshes.octree import Octree, build_segment, default_threads
from precompute.meshes.output import first_view_bytes, size_of, write_output
from precompute.multilod import Piece
from precompute.points.ndjson import read_records

ANGSTROM = 1e-10
# Draco's level 3 encodes many small separate models 1.5x faster than level 7 (1.67 against
# 1.13 M triangles per CPU-second, 40 copies of a 1,000-triangle model) for 5% more bytes
# (2.28 against 2.16 per triangle); on one connected surface the two run equally fast.
DRACO_INSTANCES = 3


def convert_oriented_mesh(
    template: Path,
    picks: Path,
    output: Path,
    *,
    voxel_spacing: float,
    options: MeshConfig,
    points: PrecomputeConfig,
    label: str,
    description: str = "",
    volume_size_xyz: tuple[int, int, int] | None = None,
    extent_m: tuple[float, float, float] | None = None,
    threads: int = 0,
) -> Summary:
    """Convert into the folder ``output`` (atomically); return its summary (not written).

    Raises InputError naming the file (nothing written) for a bad template or ndjson, and
    for an annotation with a template but no picks.
    """
    records = read_records(picks, "OrientedPoint", points, volume_size_xyz)
    if len(records) == 0:
        raise InputError(picks, f"no picks to place the particle model {template.name} at")
    rotation, xyz = records.rotation, records.xyz
    assert rotation is not None  # OrientedPoint records always have one
    source = read_glb(template, options.max_faces)
    model = TriangleMesh(source.vertices / voxel_spacing, source.faces)  # Å -> voxels
    count = len(records)
    finest = min(len(model.faces), max(options.min_faces, options.instance_faces // count))
    coarsest = max(options.min_faces, options.first_view_faces // count)
    levels = build_levels(model, face_targets(finest, coarsest, options))
    octree = _octree(records.xyz, levels, count, options.node_faces)
    bounds: list[np.ndarray] = []

    def cells_of(level: int) -> dict[Cell, list[Piece]]:
        mesh = levels.meshes[level]
        cells = place_by_cells(
            mesh.vertices, mesh.faces, rotation, xyz, octree.origin, octree.cell_size(level)
        )
        if level == 0:  # the exact extent of the finest models
            for pieces in cells.values():
                for vertices, _ in pieces:
                    bounds.extend((vertices.min(axis=0), vertices.max(axis=0)))
        return cells

    workers = threads or default_threads()
    segment = build_segment(octree, len(levels.meshes), cells_of, workers, DRACO_INSTANCES)
    data, manifest, coarsest_bytes = segment.finish(levels.scales)
    low, high = np.min(bounds, axis=0), np.max(bounds, axis=0)
    size = volume_size_xyz or size_of(high)
    text = description or (
        f"{count} picks of {template.name} ({len(source.faces)} triangles); "
        f"levels of detail {segment.triangles} triangles"
    )
    with atomic.atomic_directory(output) as tmp:
        sizes = write_output(tmp, voxel_spacing, size, data, manifest, label, text)
        first_view = first_view_bytes(tmp, manifest, coarsest_bytes)
    spacing_m = voxel_spacing * ANGSTROM
    extent = extent_m or (size[0] * spacing_m, size[1] * spacing_m, size[2] * spacing_m)
    grid = Grid.for_extent(extent)
    occupancy, closed = instance_occupancy(records.xyz, levels.meshes[0], spacing_m, grid, extent)
    return Summary(
        kind="mesh",
        count=count,
        bounds=((low * spacing_m).tolist(), (high * spacing_m).tolist()),
        occupancy=occupancy,
        extra={
            "shape": "OrientedPoint",
            "output": output.name,
            "source": str(picks),
            "template": str(template),
            "template_triangles": len(source.faces),
            "voxel_spacing": voxel_spacing,
            "closed": closed,
            "triangles": segment.triangles,
            "lod_scales": levels.scales,
            "out_of_bounds": records.out_of_bounds,
            "bytes": sizes["shards"] + sizes["metadata"] + 16,
            "first_view_bytes": first_view,
        },
    )


def _octree(xyz: np.ndarray, levels: Levels, count: int, node_faces: int) -> Octree:
    """Level-0 node edge: see the module docstring."""
    radius = max(float(np.linalg.norm(m.vertices, axis=1).max()) for m in levels.meshes)
    origin = np.floor(xyz.min(axis=0) - radius)
    box = xyz.max(axis=0) + radius - origin
    finest = count * len(levels.meshes[0].faces)
    # Cubes holding about node_faces triangles of the finest level, picks spread over box.
    by_faces = (float(np.prod(box)) * min(1.0, node_faces / finest)) ** (1 / 3)
    # At most 4 coarsest-level nodes along the longest axis (few first-view requests).
    by_depth = float(box.max()) / 2 ** (len(levels.meshes) + 1)
    chunk = max(by_faces, by_depth, 4 * radius, 1e-3) * (1 + 1e-6)
    return Octree(origin=origin, chunk=min(chunk, float(box.max()) * (1 + 1e-6)))
