"""Masks converted in bounded memory: bricks, node-by-node meshing, spilled fragments.

Memory is bounded by construction (a brick, a node per worker); these tests check what that
construction must not change: a mask several bricks and nodes large, converted with a small
brick, gives the same bytes as with a brick holding the whole mask, the levels equal a
whole-volume mode pyramid, and every label's LOD-0 mesh is watertight across node seams.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import trimesh
from cloudvolume import CloudVolume
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_segmentation import SPACING, blobs, check_output, convert, make_job, write_zarr

from cryoet_ng.config import PrecomputeConfig
from precompute.segmentation.mesh_blocks import NODE
from precompute.segmentation.mesh_shard import FragmentSpill, write_shard
from precompute.segmentation.meshes import MeshOptions, mesh_sharding, write_meshes
from precompute.segmentation.volume import plan_scales

# z, y, x: 3 x 2 x 3 bricks of 128 and 2 x 2 x 3 LOD-0 nodes; 4 scales, 3 passes at 128.
SHAPE = (150, 200, 290)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def membranes(shape: tuple[int, int, int]) -> np.ndarray:
    """Thin shells (a binary membrane-like mask) crossing brick and node faces."""
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    out = np.zeros(shape, np.uint8)
    for c, r in [((70, 100, 130), 60), ((40, 60, 230), 35), ((120, 170, 60), 45)]:
        d = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
        out |= (np.abs(d - r) < 2.5).astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("instance")
    data = blobs(SHAPE, labels=9, seed=11, dtype=np.uint16)
    return write_zarr(root / "mask.zarr", data, chunks=64), data


@pytest.mark.slow
def test_bricks_give_the_bytes_of_one_brick(
    tmp_path: Path, instance: tuple[Path, np.ndarray]
) -> None:
    source, data = instance
    size = SHAPE[::-1]
    outputs = {}
    for brick in (128, 512):
        job = make_job(tmp_path / str(brick), source, "InstanceSegmentationMask", size)
        options = PrecomputeConfig(volume_brick=brick, shard_min_voxels=1_000_000, workers=1)
        convert(job, options)
        outputs[brick] = tree(job.output)
        if brick == 128:
            check_output(job, data, instance=True)  # whole-volume reference pyramid, meshes
            assert_watertight(job.output, data)
    assert outputs[128].keys() == outputs[512].keys()
    differ = [k for k in outputs[128] if outputs[128][k] != outputs[512][k]]
    assert not differ, f"brick size changed {differ}"


@pytest.mark.slow
def test_binary_mrc_membranes_watertight_across_nodes(tmp_path: Path) -> None:
    data = membranes(SHAPE)
    path = tmp_path / "mask.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data.astype(np.int8))
        mrc.voxel_size = SPACING
    job = make_job(tmp_path, path, "SegmentationMask")
    convert(job, PrecomputeConfig(volume_brick=128, workers=1))
    level0 = CloudVolume("file://" + str(job.output), progress=False)[:, :, :][..., 0]
    np.testing.assert_array_equal(level0.transpose(2, 1, 0), data)
    assert_watertight(job.output, data)


def assert_watertight(out: Path, data: np.ndarray) -> None:
    """LOD 0 of every label, read by cloud-volume and welded by trimesh, is watertight, and
    it spans more than one octree node (so node seams were crossed)."""
    cv = CloudVolume("file://" + str(out), progress=False)
    res = SPACING / 10
    for label in sorted(int(v) for v in np.unique(data) if v):
        mesh = cv.mesh.get(label, lod=0)[label]
        welded = trimesh.Trimesh(mesh.vertices / res, mesh.faces, process=True)
        welded.merge_vertices(digits_vertex=3)
        assert welded.is_watertight, f"label {label}: LOD 0 mesh not watertight"
        nodes = np.unique(np.floor(welded.vertices / NODE).astype(int), axis=0)
        if label == 1:
            assert len(nodes) > 1


@pytest.mark.slow
def test_parallel_meshing_gives_the_same_bytes(
    tmp_path: Path, instance: tuple[Path, np.ndarray]
) -> None:
    """Nodes meshed by a process pool (forced on a small mask) or in this thread: same files."""
    source, _ = instance
    job = make_job(tmp_path, source, "InstanceSegmentationMask", SHAPE[::-1])
    summary = convert(job, PrecomputeConfig(workers=1))
    scales = plan_scales(SHAPE[::-1], SPACING / 10, PrecomputeConfig().shard_min_voxels)
    labels = sorted(summary.labels or {})
    serial = tree(job.output / "mesh")
    shutil.rmtree(job.output / "mesh")
    write_meshes(job.output, scales, labels, MeshOptions(3, workers=2, pool_min_nodes=1))
    assert tree(job.output / "mesh") == serial


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=st.lists(st.integers(1, 2**40), min_size=1, max_size=300, unique=True),
    data=st.data(),
)
def test_streamed_shard_is_cloud_volumes(labels: list[int], data: st.DataObject) -> None:
    """The shard streamed from the spill file equals cloud-volume's synthesize_shards."""
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

    from precompute.segmentation.mesh_shard import label_layout

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        spill = FragmentSpill(out)
        fragments = []
        for label in labels:
            count = data.draw(st.integers(1, 4))
            nodes = data.draw(
                st.lists(st.tuples(*[st.integers(0, 5)] * 3), min_size=count, max_size=count)
            )
            for lod, node in enumerate(nodes[:2]):
                blob = data.draw(st.binary(min_size=1, max_size=40))
                fragments.append((label, lod, (node[0] >> lod, node[1], node[2]), blob))
        fragments = list({(f[0], f[1], f[2]): f for f in fragments}.values())
        spill.add(fragments[::-1])  # arrival order must not matter
        sharding = mesh_sharding(len(labels))
        names = write_shard(out, sharding, spill, labels, num_lods=2)
        blobs_, manifests = {}, {}
        for label, rows in spill.by_label().items():
            spans, manifest = label_layout(rows, 2)
            spill.file.seek(0)
            everything = spill.file.read()
            body = b"".join(everything[o : o + n] for o, n in spans.tolist())
            blobs_[label] = body + manifest
            manifests[label] = len(manifest)
        spill.close()
        expected = ShardingSpecification.from_dict(sharding).synthesize_shards(blobs_, manifests)
        assert sorted(names) == sorted(expected)
        for name, content in expected.items():
            assert (out / name).read_bytes() == content


@pytest.mark.slow
def test_meshing_inside_a_dask_worker_uses_the_cluster(tmp_path: Path) -> None:
    """A mask converted on a Dask worker meshes its nodes as tasks on the cluster's workers
    (zmesh holds the GIL and a worker may not fork): same files as in this process."""
    from dask.distributed import Client, LocalCluster

    shape = (60, 130, 270)  # 9 nodes over 3 LODs: 2 tasks
    source = write_zarr(tmp_path / "mask.zarr", blobs(shape, labels=4, seed=5, dtype=np.uint8))
    local = make_job(tmp_path / "local", source, "InstanceSegmentationMask", shape[::-1])
    convert(local, PrecomputeConfig(workers=1))
    remote = make_job(tmp_path / "dask", source, "InstanceSegmentationMask", shape[::-1])
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.submit(convert, remote, PrecomputeConfig(workers=2), pure=False).result()
        ran = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert tree(remote.output) == tree(local.output)
    assert min(ran.values()) >= 1, f"block tasks did not reach every worker: {ran}"
