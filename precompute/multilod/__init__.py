"""The ``neuroglancer_multilod_draco`` format, written once for every mesh writer.

Masks (:mod:`precompute.segmentation.meshes`) and mesh annotations (:mod:`precompute.meshes`)
build their octrees differently but encode and store them the same way:

* a fragment is the part of one level of detail inside one octree node, its vertices
  quantised to 16 bits over the node's box and Draco-encoded (:func:`encode_fragment`);
* a segment's manifest lists, per level, the nodes in Z-curve order and their fragment
  sizes (:class:`Frame`: the constants of one mesh, :meth:`Frame.manifest`); every node
  needs its parent at the next level (:func:`complete_octree`), or Neuroglancer never
  reaches it;
* segments go into sharded files (``neuroglancer_uint64_sharded_v1``): the fragments sit
  right before their manifest, and the shard index points at the manifest only
  (:mod:`.shards`: streamed, byte-identical to cloud-volume's ``synthesize_shards`` with the
  manifest sizes as ``data_offset``; fragments may come from memory or from a spill file).

Spec: Neuroglancer ``src/datasource/precomputed/meshes.md`` and ``sharded.md``.
"""

from precompute.multilod.encoding import (
    DRACO_LEVEL,
    PARTITION,
    QMAX,
    QUANT_BITS,
    Frame,
    Piece,
    Position,
    complete_octree,
    encode_fragment,
    encode_pieces,
    merge,
    mesh_info,
    mesh_sharding,
    morton,
    non_degenerate,
)
from precompute.multilod.shards import (
    Fragment,
    FragmentSpill,
    write_segments,
    write_shards,
)

__all__ = [
    "DRACO_LEVEL",
    "PARTITION",
    "QMAX",
    "QUANT_BITS",
    "Fragment",
    "FragmentSpill",
    "Frame",
    "Piece",
    "Position",
    "complete_octree",
    "encode_fragment",
    "encode_pieces",
    "merge",
    "mesh_info",
    "mesh_sharding",
    "morton",
    "non_degenerate",
    "write_segments",
    "write_shards",
]
