"""Multi-resolution meshes (``neuroglancer_multilod_draco``, sharded) of every label.

Level of detail ``l`` is marching cubes (zmesh) on pyramid scale ``l`` (2^l isotropic
downsampling), simplified with the border locked (:mod:`.mesh_blocks`). Each LOD is meshed
by octree nodes (``NODE``^3 voxels of its scale, read back from the written scale with one
voxel of overlap), which are independent tasks spread over every core (:mod:`.parallel`).
Fragments go to a spill file as they come and are streamed into the shard at the end
(:mod:`.mesh_shard`), so memory is bounded by one node per worker, not by the mask.

Stored-model space is level-0 voxel units where voxel ``i`` spans ``[i, i + 1)``; the info's
transform scales it to nanometres, the volume's physical space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoet_ng import atomic
from precompute.segmentation.mesh_blocks import NODE, QUANT_BITS, Node, mesh_nodes
from precompute.segmentation.mesh_shard import FragmentSpill, write_shard
from precompute.segmentation.parallel import run_all, worker_count
from precompute.segmentation.volume import Scale

MESH_DIR = "mesh"
NODES_PER_TASK = 8  # ~0.5-2 s of work per task at LOD 0: small against the task overhead
POOL_MIN_NODES = 24  # below this, meshing in this process beats starting a process pool


@dataclass(frozen=True)
class MeshOptions:
    num_lods: int  # wanted; fewer when the pyramid stops being isotropic
    workers: int = 0  # processes for meshing; 0 = every core
    pool_min_nodes: int = POOL_MIN_NODES


def lod_levels(scales: list[Scale], wanted: int) -> int:
    """Number of LODs: pyramid levels whose factor is (2^l, 2^l, 2^l)."""
    n = 0
    for level, scale in enumerate(scales[: max(wanted, 1)]):
        if scale.factor != (2**level,) * 3:
            break
        n += 1
    return n


def write_meshes(
    root: Path,
    scales: list[Scale],
    labels: list[int],
    options: MeshOptions,
    content: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Mesh every label of the volume at ``root`` into ``root/mesh`` (info + shard files).

    ``content`` (level-0 voxel box, x, y, z, upper exclusive) limits the nodes meshed; None
    meshes the whole volume.
    """
    out = root / MESH_DIR
    out.mkdir()
    num_lods = lod_levels(scales, options.num_lods)
    res = scales[0].resolution
    sharding = mesh_sharding(len(labels))
    info = {
        "@type": "neuroglancer_multilod_draco",
        "vertex_quantization_bits": QUANT_BITS,
        "transform": [res[0], 0, 0, 0, 0, res[1], 0, 0, 0, 0, res[2], 0],
        "lod_scale_multiplier": 1.0,
        "sharding": sharding,
    }
    tasks: list[tuple[Path, int, list[Node]]] = []
    for lod in range(num_lods if labels else 0):
        nodes = lod_nodes(scales[lod].size, lod, content)
        tasks += [
            (root, lod, nodes[i : i + NODES_PER_TASK]) for i in range(0, len(nodes), NODES_PER_TASK)
        ]
    total = sum(len(t[2]) for t in tasks)
    spill = FragmentSpill(out)
    try:
        workers = worker_count(options.workers)
        for fragments in run_all(mesh_nodes, tasks, workers, pool=total >= options.pool_min_nodes):
            spill.add(fragments)
        write_shard(out, sharding, spill, labels, num_lods)
    finally:
        spill.close()
    atomic.write_json(out / "info", info)


def lod_nodes(
    size_xyz: tuple[int, int, int], lod: int, content: tuple[np.ndarray, np.ndarray] | None
) -> list[Node]:
    """Octree nodes of scale ``lod`` that can hold a surface, in z, y, x order.

    Node ``n`` meshes voxel centres ``n * NODE - 1 .. n * NODE + NODE`` (padding voxel -1 and
    ``size`` are outside the volume, hence ``size + 1`` cubes per axis)."""
    count = [-(-(n + 1) // NODE) for n in size_xyz]
    lo, hi = [0, 0, 0], count
    if content is not None:
        # Label voxels lie within (lower >> lod) .. ((upper - 1) >> lod) at this scale; the
        # cubes around voxel w have low corners w - 1 and w, in nodes (corner + 1) // NODE.
        lower, upper = content
        lo = [(int(v) >> lod) // NODE for v in lower]
        hi = [
            min(c, (((int(v) - 1) >> lod) + 1) // NODE + 1)
            for c, v in zip(count, upper, strict=True)
        ]
    return [
        (x, y, z)
        for z in range(lo[2], hi[2])
        for y in range(lo[1], hi[1])
        for x in range(lo[0], hi[0])
    ]


def mesh_sharding(num_labels: int) -> dict[str, Any]:
    """One shard file; enough minishards that each index stays small."""
    minishard_bits = max(0, math.ceil(math.log2(max(num_labels, 1) / 256)))
    return {
        "@type": "neuroglancer_uint64_sharded_v1",
        "hash": "murmurhash3_x86_128",
        "preshift_bits": 0,
        "minishard_bits": minishard_bits,
        "shard_bits": 0,
        "minishard_index_encoding": "gzip",
        "data_encoding": "raw",  # Draco is already compressed; offsets must stay exact
    }
