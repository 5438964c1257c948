"""The vectorised shard writer and helpers, checked by tensorstore, cloud-volume, neuroglancer."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
from cloudvolume.datasource.precomputed.sharding import compute_shard_params_for_hashed
from neuroglancer import read_precomputed_annotations
from test_points_support import point_records, run

from cryoet_ng.config import PrecomputeConfig
from precompute.points.sharded import ShardSpec, shard_params, write_sharded
from precompute.points.spatial import morton_keys


def _kvstore(directory: Path, sharding: dict) -> ts.KvStore:
    spec = {"driver": "neuroglancer_uint64_sharded", "base": f"file://{directory}/"}
    return ts.KvStore.open({**spec, "metadata": sharding}).result()


def _read_all(kv: ts.KvStore) -> dict[int, bytes]:
    return {struct.unpack(">Q", k)[0]: kv.read(k).result().value for k in kv.list().result()}


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_random_keys_many_shards_read_by_tensorstore(tmp_path: Path, encoding: str) -> None:
    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(0, 2**62, 3000, dtype=np.uint64))
    sizes = rng.integers(1, 40, len(keys))
    values = [rng.integers(0, 256, s, dtype=np.uint8).tobytes() for s in sizes]
    spec = ShardSpec(
        preshift_bits=2, minishard_bits=3, shard_bits=4, minishard_index_encoding=encoding
    )
    order = spec.order(keys)
    assert order is not None  # keys above 2**9 wrap around the hash bits: real reordering
    data = np.frombuffer(b"".join(values[i] for i in order), np.uint8)
    files = write_sharded(tmp_path, spec, keys[order], data, sizes[order])
    assert files == len(list(tmp_path.iterdir())) == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{s:x}.shard" for s in range(16)]
    got = _read_all(_kvstore(tmp_path, spec.to_json()))
    assert got == {int(k): v for k, v in zip(keys, values, strict=True)}


def test_annotation_indices_read_by_tensorstore(tmp_path: Path) -> None:
    xyz = np.random.default_rng(1).uniform(0, 300, (4000, 3)).round(2)
    records = point_records(xyz, "InstanceSegmentation", instance_id=np.arange(4000) // 50 + 1)
    job, _ = run(
        tmp_path, records, "InstanceSegmentation", options=PrecomputeConfig(annotation_limit=300)
    )
    info = json.loads((job.output / "info").read_text())
    by_id = _read_all(_kvstore(job.output / "by_id", info["by_id"]["sharding"]))
    assert sorted(by_id) == list(range(4000))
    record = 12 + 4 + 4 + 1 + 3  # geometry, point_index, diameter, name (uint8), rgb
    for i in (0, 1234, 3999):
        value = by_id[i]
        assert len(value) == record + 4 + 8
        assert np.array_equal(np.frombuffer(value[:12], "<f4"), xyz[i].astype(np.float32))
        assert struct.unpack_from("<IQ", value, record) == (1, i // 50 + 1)
    total = 0
    for level in info["spatial"]:
        cells = _read_all(_kvstore(job.output / level["key"], level["sharding"]))
        for value in cells.values():
            (count,) = struct.unpack_from("<Q", value)
            assert len(value) == 8 + count * (record + 8) and 0 < count <= level["limit"]
            total += count
    assert total == 4000
    relationship = info["relationships"][0]
    groups = _read_all(_kvstore(job.output / relationship["key"], relationship["sharding"]))
    assert sorted(groups) == list(range(1, 81))
    assert {struct.unpack_from("<Q", v)[0] for v in groups.values()} == {50}


@pytest.mark.parametrize("count", [0, 1, 500, 1365, 1366, 5000, 100_000, 699_051, 10**6, 3 * 10**7])
def test_shard_params_match_cloud_volume(count: int) -> None:
    shard_bits, minishard_bits, preshift = compute_shard_params_for_hashed(count)
    assert shard_params(count) == (shard_bits, minishard_bits) and preshift == 0


def test_preshift_covers_every_key() -> None:
    for keys in (np.arange(10**6, dtype=np.uint64), np.array([5, 2**40], np.uint64)):
        spec = ShardSpec.for_keys(keys)
        assert spec.order(keys) is None
        top = spec.preshift_bits + spec.minishard_bits + spec.shard_bits
        assert int(keys.max()) < 2**top


def test_morton_keys_match_neuroglancer_reader() -> None:
    rng = np.random.default_rng(0)
    for grid in [(1, 1, 1), (2, 2, 1), (8, 4, 2), (16, 1, 32), (1024, 512, 3)]:
        cells = np.stack([rng.integers(0, g, 50) for g in grid], axis=1)
        ours = morton_keys(cells, grid)
        theirs = [read_precomputed_annotations._zorder_compressed(c, grid) for c in cells]
        assert ours.tolist() == theirs
