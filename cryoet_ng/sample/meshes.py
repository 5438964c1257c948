"""Meshes of the sample tree: a particle model (glb, Å) and a membrane surface (glb, voxels).

* The ATP synthase model is the marching-cubes isosurface (zmesh) of a synthetic density
  built like the particle painted into the tomogram (``volume._atp_density``): a head ball
  of 3 voxels at the pick, a stalk along the particle's +z to the membrane, plus the Fo
  ring in the membrane. Units are Å (what the portal's oriented-mesh encoder assumes);
  the pick is the origin, so ``R @ v + location`` lays it on the painted particle.
* The membrane surface is the cell's ellipsoid (the membrane mid-plane) as a triangle
  mesh in voxels at the tomogram's spacing (the portal's TriangularMesh units), cut to the
  slab like the cell itself.

Both are deterministic (no randomness; the glb writer adds no time stamps).
"""

from __future__ import annotations

import numpy as np
import trimesh
import zmesh

from cryoet_ng.sample.scene import ATP_HEAD_OFFSET, Scene
from cryoet_ng.sample.spec import VOXEL_SPACING

_STEP = 3.0  # Å per grid step of the model's density


def _glb(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    data = trimesh.Trimesh(vertices=vertices, faces=faces, process=False).export(file_type="glb")
    assert isinstance(data, bytes)  # glb export is binary
    return data


def atp_synthase_template(faces: int = 3000) -> bytes:
    """The particle model glb (Å, pick at the origin, membrane along +z)."""
    half = (ATP_HEAD_OFFSET + 3.0) * VOXEL_SPACING  # the head and stalk fit in +-half
    axis = np.arange(-half, half + _STEP, _STEP)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    voxel = VOXEL_SPACING
    head = np.sqrt(x**2 + y**2 + z**2) < 3.0 * voxel
    radial = np.sqrt(x**2 + y**2)
    stalk = (radial < 1.0 * voxel) & (z > 0) & (z < ATP_HEAD_OFFSET * voxel)
    ring = (radial < 2.0 * voxel) & (np.abs(z - ATP_HEAD_OFFSET * voxel) < 1.2 * voxel)
    labels = (head | stalk | ring).astype(np.uint8)
    mesher = zmesh.Mesher((_STEP, _STEP, _STEP))
    mesher.mesh(np.asfortranarray(labels.T))  # zmesh wants x, y, z
    surface = mesher.get(1, normals=False)
    mesher.clear()
    surface = zmesh.simplify_fqmr(surface, target_count=faces, preserve_border=False)
    vertices = surface.vertices.astype(np.float64) + axis[0]  # grid origin -> pick at 0
    return _glb(vertices, surface.faces)


def membrane_surface(scene: Scene) -> bytes:
    """The cell membrane mid-plane inside the tomogram, in voxels (open where cut)."""
    nz = scene.shape_zyx[0]
    subdivisions = 5 if nz < 100 else 6  # edges of about 1.5 and 3.5 voxels
    ball = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    vertices = ball.vertices * scene.cell_axes + scene.cell_centre
    faces = ball.faces
    for normal, origin in (([0, 0, 1], [0, 0, 0]), ([0, 0, -1], [0, 0, nz - 1])):
        vertices, faces = trimesh.intersections.slice_faces_plane(
            vertices, faces, np.asarray(normal, float), np.asarray(origin, float)
        )[:2]
    used, compact = np.unique(faces, return_inverse=True)
    return _glb(vertices[used], compact.reshape(-1, 3))
