"""Data trees on object storage and HTTP: the sample tree uploaded to moto's S3 server (and
served by a static HTTP server with its index) must give the same catalogue, the same
precompute outputs byte for byte and the same viewer states as the local tree."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import (
    empty_bucket,
    http_tree,
    local_hashes,
    outputs,
    remote_hashes,
    s3_environment,
    upload,
)

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.config import Config
from cryoet_ng.store import Location, open_store
from cryoet_ng_cli import main as cli

boto3 = pytest.importorskip("boto3")

DATA, OUT = "portal-data", "portal-out"


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    s3_environment(monkeypatch, s3_endpoint)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    for bucket in (DATA, OUT):
        client.create_bucket(Bucket=bucket)
    yield client
    for bucket in (DATA, OUT):
        empty_bucket(client, bucket)


def shape_of(catalogue: Catalogue) -> list[tuple]:
    """Everything the catalogue found, with paths as keys relative to the root."""
    rows: list[tuple] = []
    for run in catalogue.runs():
        for t in run.tomograms:
            rows.append((run.dataset_id, run.name, "t", t.id, t.omezarr_relative, t.size_xyz))
        for a in run.annotations:
            files = [(f.shape, f.format, f.relative_path, f.exists) for f in a.files]
            rows.append((run.dataset_id, run.name, "a", a.voxel_spacing, a.id, a.stem, files))
    return sorted(rows, key=repr)


def test_bucket_tree_gives_the_same_catalogue_outputs_and_states(
    s3, sample_root: Path, tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(s3, DATA, sample_root, "tree")
    local = Catalogue.scan(sample_root)
    # Anonymous, as the public portal bucket is read.
    s3_environment(monkeypatch, s3_endpoint, signed=False)
    remote = Catalogue.scan(f"s3://{DATA}/tree")
    assert remote.warnings == [] and shape_of(remote) == shape_of(local)
    tomogram = remote.run("10000", "TS_026").tomograms[0]
    assert isinstance(tomogram.omezarr_path, Location)
    assert str(tomogram.omezarr_path) == f"s3://{DATA}/tree/{tomogram.omezarr_relative}"

    s3_environment(monkeypatch, s3_endpoint)
    tree = tmp_path / "tree"
    shutil.copytree(sample_root, tree)
    local_out = tmp_path / "local-out"
    assert cli(["precompute", str(tree), "--out", str(local_out), "--workers", "1"]) == 0
    report = tmp_path / "report.json"
    argv = ["precompute", f"s3://{DATA}/tree", "--out", f"s3://{OUT}/v1", "--workers", "1"]
    assert cli([*argv, "--report", str(report)]) == 0
    counts = json.loads(report.read_text())["counts"]
    assert counts["done"] == counts["total"] > 10
    assert outputs(remote_hashes(s3, OUT, "v1")) == outputs(local_hashes(local_out))

    # States from the bucket's catalogue are the local tree's states.
    from ngstate import StateOptions, build_state

    config = Config(data_root=tree, output_root=local_out)
    options = StateOptions.from_config(config, data_url="https://files.example.org")
    for run in local.runs():
        for t in run.tomograms:
            here = build_state(local, run.dataset_id, run.name, t.id, options)
            there = build_state(remote, run.dataset_id, run.name, t.id, options)
            assert there.state == here.state and there.messages == here.messages


def test_noop_rerun_reads_no_input_data(s3, sample_root: Path, tmp_path: Path) -> None:
    upload(s3, DATA, sample_root, "tree")
    argv = ["precompute", f"s3://{DATA}/tree", "--out", f"s3://{OUT}/v1", "--workers", "1"]
    assert cli(argv) == 0
    store = open_store(f"s3://{DATA}/tree")
    before = dict(store.requests)
    report = tmp_path / "r.json"
    assert cli([*argv, "--report", str(report)]) == 0
    counts = json.loads(report.read_text())["counts"]
    assert counts["skipped"] == counts["total"]
    used = {k: store.requests[k] - before.get(k, 0) for k in store.requests}
    # Listings only: no metadata document (index unchanged) and no input byte was read.
    assert used.get("read", 0) == 0 and used.get("head", 0) == 0, used
    assert used["list"] > 0


def test_http_tree_with_published_index(sample_root: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(sample_root, tree)
    # Without an index an https:// tree cannot be read, and says how to fix it.
    with http_tree(tree) as url:
        bare = Catalogue.scan(url)
        assert bare.datasets == {} and "cryoet-ng index" in bare.warnings[0].message
    assert cli(["index", str(tree), "--out", str(tree)]) == 0
    local = Catalogue.scan(tree)
    local_out = tmp_path / "local-out"
    assert cli(["precompute", str(tree), "--out", str(local_out), "--workers", "1"]) == 0
    with http_tree(tree) as url:
        remote = Catalogue.scan(url)
        assert remote.datasets.loaded == []  # type: ignore[attr-defined]  # lazy
        assert remote.run("10001", "TS_100") is not None
        assert remote.datasets.loaded == ["10001"]  # type: ignore[attr-defined]
        assert shape_of(remote) == shape_of(local) and remote.warnings == []
        http_out = tmp_path / "http-out"
        report = tmp_path / "r.json"
        argv = ["precompute", url, "--out", str(http_out), "--workers", "1"]
        assert cli([*argv, "--report", str(report)]) == 0
    counts = json.loads(report.read_text())["counts"]
    assert counts["done"] == counts["total"]
    # Converted data byte-identical; summaries differ only in the input fingerprint (an
    # HTTP tree cannot list a zarr folder to hash it, so its index signature stands in).
    mine = {k: v for k, v in outputs(local_hashes(http_out)).items() if "summary" not in k}
    theirs = {k: v for k, v in outputs(local_hashes(local_out)).items() if "summary" not in k}
    assert mine == theirs
