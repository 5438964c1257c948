"""The shared multi-LOD writer: segments held in memory give cloud-volume's shard bytes.

(The spill-file path through the same shard writer is compared with cloud-volume in
``test_segmentation_bounded``; the fragments and manifests are read back by cloud-volume in
the mask and mesh-annotation tests.)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from cloudvolume.datasource.precomputed.sharding import ShardingSpecification
from hypothesis import given, settings
from hypothesis import strategies as st

from precompute.multilod import mesh_info, write_segments

segments = st.dictionaries(
    st.integers(1, 2**50),
    st.tuples(st.binary(max_size=60), st.binary(min_size=1, max_size=30)),
    min_size=1,
    max_size=600,
)


@settings(max_examples=30, deadline=None)
@given(segments=segments)
def test_segments_in_memory_give_cloud_volumes_shards(
    segments: dict[int, tuple[bytes, bytes]],
) -> None:
    info = mesh_info((1.0, 2.0, 3.0), len(segments))
    blobs = {label: data + manifest for label, (data, manifest) in segments.items()}
    offsets = {label: len(manifest) for label, (_, manifest) in segments.items()}
    spec = ShardingSpecification.from_dict(info["sharding"])
    expected = spec.synthesize_shards(blobs, offsets)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mesh"
        total = write_segments(folder, info, segments)
        written = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "info"}
        assert json.loads((folder / "info").read_text()) == info
    assert written == expected
    assert total == sum(len(b) for b in expected.values())
