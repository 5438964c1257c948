"""Mesh annotations -> Neuroglancer precomputed meshes (multi-resolution, sharded).

Two converters, plain parameters in, a :class:`~cryoet_ng.summaries.Summary` (kind
``"mesh"``) out; the caller writes the summary beside the output folder:

* :func:`convert_triangular_mesh`: a ``_triangularmesh.glb`` (shape TriangularMesh) into
  ``<annotation_id>-<slug>-<version>_triangularmesh/``;
* :func:`convert_oriented_mesh`: a particle model (glb, Å) at every pick of an
  OrientedPoint ndjson into ``<annotation_id>-<slug>-<version>_orientedmesh/``;
  :func:`template_path` finds the model (``mesh_source_path`` or ``meshes.templates``).

Output folder layout: see :mod:`precompute.meshes.output`. Bad input raises
:class:`~precompute.errors.InputError` naming the file, and nothing is written.
"""

from precompute.meshes.glb import template_path
from precompute.meshes.oriented import convert_oriented_mesh
from precompute.meshes.triangular import convert_triangular_mesh

__all__ = ["convert_oriented_mesh", "convert_triangular_mesh", "template_path"]
