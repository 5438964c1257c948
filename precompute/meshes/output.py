"""The folder around a mesh: a segmentation ``info`` with no voxels, the mesh, properties.

Layout (the portal's mesh outputs, readable by Neuroglancer, cloud-volume, tensorstore)::

    info                  neuroglancer_multiscale_volume, type segmentation, with
                          "mesh": "mesh" and "segment_properties": "segment_properties"
    data/0.shard          one 16-byte shard index saying "no chunks": the volume reads as
                          all background (the portal's mesh outputs have no data at all,
                          so a viewer showing the layer's default subsource gets 404s)
    mesh/info             neuroglancer_multilod_draco, sharded; stored model = voxels at
                          the annotation's spacing, transform scales to nanometres
    mesh/0.shard          fragments + manifest of segment 1
    segment_properties/   inline label (object name) and description

Placement is in nanometres of the annotation's voxel spacing (resolution = spacing / 10),
so the mesh lies on the tomogram without a correcting source transform; a portal-style
state that sets ``inputDimensions`` to the spacing in metres gives the same placement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cryoet_ng import atomic
from precompute.multilod import mesh_info, write_segments

SEGMENT = 1  # the portal's mesh layers show segment 1
MESH_DIR = "mesh"
PROPERTIES_DIR = "segment_properties"
DATA_KEY = "data"
_EMPTY_SHARDING = {
    "@type": "neuroglancer_uint64_sharded_v1",
    "hash": "identity",
    "preshift_bits": 0,
    "minishard_bits": 0,
    "shard_bits": 0,
    "minishard_index_encoding": "raw",
    "data_encoding": "raw",
}


def volume_info(voxel_spacing: float, size_xyz: tuple[int, int, int]) -> dict[str, Any]:
    """Segmentation ``info`` whose only scale holds no chunks (one empty shard)."""
    nm = voxel_spacing / 10
    return {
        "@type": "neuroglancer_multiscale_volume",
        "type": "segmentation",
        "data_type": "uint32",
        "num_channels": 1,
        "mesh": MESH_DIR,
        "segment_properties": PROPERTIES_DIR,
        "scales": [
            {
                "key": DATA_KEY,
                "resolution": [nm, nm, nm],
                "size": [max(1, int(n)) for n in size_xyz],
                "voxel_offset": [0, 0, 0],
                "chunk_sizes": [[64, 64, 64]],
                "encoding": "raw",
                "sharding": _EMPTY_SHARDING,
            }
        ],
    }


def write_output(
    folder: Path,
    voxel_spacing: float,
    size_xyz: tuple[int, int, int],
    data: bytes,
    manifest: bytes,
    label: str,
    description: str,
) -> dict[str, int]:
    """Write everything but the summary into ``folder``; return byte counts."""
    atomic.write_json(folder / "info", volume_info(voxel_spacing, size_xyz))
    # Shard index of the only minishard: start = end = 0, no chunks anywhere.
    atomic.write_bytes(folder / DATA_KEY / "0.shard", bytes(16))
    properties = {
        "@type": "neuroglancer_segment_properties",
        "inline": {
            "ids": [str(SEGMENT)],
            "properties": [
                {"id": "label", "type": "label", "values": [label]},
                {"id": "description", "type": "description", "values": [description]},
            ],
        },
    }
    atomic.write_json(folder / PROPERTIES_DIR / "info", properties)
    nm = voxel_spacing / 10
    info = mesh_info((nm, nm, nm), 1)
    shards = write_segments(folder / MESH_DIR, info, {SEGMENT: (data, manifest)})
    return {"shards": shards, "metadata": _metadata_bytes(folder)}


def _metadata_bytes(folder: Path) -> int:
    """The JSON a viewer reads before any mesh data (both infos and the properties)."""
    names = ("info", f"{MESH_DIR}/info", f"{PROPERTIES_DIR}/info")
    return sum((folder / name).stat().st_size for name in names)


def size_of(upper: np.ndarray) -> tuple[int, int, int]:
    """Volume size (voxels) that holds a mesh reaching ``upper``, when no tomogram says."""
    x, y, z = (max(1, int(np.ceil(v))) for v in upper)
    return x, y, z


def first_view_bytes(folder: Path, manifest: bytes, coarsest: int) -> int:
    """Bytes a viewer fetches to draw the coarsest level everywhere: the metadata, the
    mesh shard's index and minishard index, the manifest and the coarsest fragments."""
    shard = (folder / MESH_DIR / "0.shard").read_bytes()
    index = np.frombuffer(shard[:16], "<u8")  # one minishard: [start, end) after the index
    minishard = int(index[1] - index[0])
    return _metadata_bytes(folder) + 16 + minishard + len(manifest) + coarsest
