"""The batch over a bucket tree on a Dask cluster that shares no file system.

Real components: moto's S3 server (behind a logging proxy, to see every request), a
``dask scheduler`` and two ``dask worker`` processes, each worker with its own working
directory, ``TMPDIR`` and ``CRYOET_NG_STAGING``. The driver's staging folder is read-only:
nothing may be staged on the driver. Inputs are read from the bucket and outputs published
to the bucket by the workers themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_support import dask_cluster
from store_support import (
    faulty_proxy,
    local_hashes,
    outputs,
    remote_hashes,
    s3_buckets,
    s3_environment,
    upload,
)

from cryoet_ng_cli import main as cli

for _module in ("precompute.points", "precompute.segmentation", "precompute.tomogram"):
    pytest.importorskip(_module)
pytest.importorskip("boto3")

DATA, OUT = "cluster-data", "cluster-out"
DAMAGED = re.compile(r"10001/TS_100/Reconstructions/.*/Annotations/.*/nucleosome-[^/]*\.ndjson$")


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with s3_buckets(s3_endpoint, monkeypatch, DATA, OUT) as client:
        yield client


def run(argv: list[str], report: Path) -> tuple[int, dict[str, Any]]:
    status = cli([*argv, "--report", str(report)])
    return status, json.loads(report.read_text())


def test_bucket_batch_on_a_cluster_without_shared_files(
    s3: Any,
    s3_endpoint: str,
    sample_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tree = sample_copy
    local_out = tmp_path / "local-out"
    assert cli(["precompute", str(tree), "--out", str(local_out), "--workers", "1"]) == 0
    expected = outputs(local_hashes(local_out))

    upload(s3, DATA, tree, "tree")
    damaged = next(p for p in tree.rglob("*.ndjson") if DAMAGED.search(p.as_posix()))
    damaged_key = f"tree/{damaged.relative_to(tree).as_posix()}"
    original = damaged.read_bytes()
    s3.put_object(Bucket=DATA, Key=damaged_key, Body=original + b'{"type": "point"}\n')

    driver_staging = tmp_path / "driver-staging"
    driver_staging.mkdir(mode=0o500)  # unusable: nothing may be staged on the driver
    monkeypatch.setenv("CRYOET_NG_STAGING", str(driver_staging))
    seen: list[str]
    with faulty_proxy(s3_endpoint, lambda method, path: None) as (proxy, seen):
        s3_environment(monkeypatch, proxy)  # driver and workers: every request is logged
        env = {"AWS_ENDPOINT_URL": proxy, "AWS_ACCESS_KEY_ID": "testing"}
        with dask_cluster(tmp_path / "cluster", 2, env) as cluster:
            argv = ["precompute", f"s3://{DATA}/tree", "--scheduler", cluster.address]
            argv += ["--out", f"s3://{OUT}/v1"]

            # 1. A damaged input in the bucket: its job fails on a worker, the others publish.
            status, report = run(argv, tmp_path / "r1.json")
            assert status == 1 and report["executor"] == f"dask scheduler {cluster.address}"
            assert report["counts"]["failed"] == 1 and report["counts"]["done"] > 10
            (failure,) = report["failures"]
            assert failure["file"] == f"s3://{DATA}/{damaged_key}" and failure["line"]
            assert failure["output"].startswith(f"s3://{OUT}/v1/")
            failed = failure["output"].removeprefix(f"s3://{OUT}/v1/")
            remote = outputs(remote_hashes(s3, OUT, "v1"))
            body = s3.get_object(Bucket=OUT, Key=f"v1/{failed}.failed.json")["Body"]
            record = json.loads(body.read())
            assert record["file"] == damaged_key.removeprefix("tree/")
            assert "staging" not in record["message"] and "/tmp" not in record["message"]
            assert remote == {
                **{k: v for k, v in expected.items() if not k.startswith(failed)},
                f"{failed}.failed.json": remote[f"{failed}.failed.json"],
            }

            # 2. Repaired: only that job runs; every output is the local run's, byte for byte.
            s3.put_object(Bucket=DATA, Key=damaged_key, Body=original)
            status, report = run(argv, tmp_path / "r2.json")
            assert status == 0 and report["counts"]["done"] == 1
            assert outputs(remote_hashes(s3, OUT, "v1")) == expected

            # 3. Nothing changed: every job skipped, on metadata alone.
            seen.clear()
            status, report = run(argv, tmp_path / "r3.json")
            counts = report["counts"]
            assert status == 0 and counts["skipped"] == counts["total"] == report["counts"]["total"]
            assert outputs(remote_hashes(s3, OUT, "v1")) == expected
            requests = list(seen)

        for i in range(2):  # every worker's staging is cleaned up
            assert list(cluster.staging(i).iterdir()) == []
    assert list(driver_staging.iterdir()) == []

    data = [r for r in requests if r.split()[1].startswith(f"/{DATA}")]
    out = [r for r in requests if r.split()[1].startswith(f"/{OUT}")]
    # The data bucket: listings only, not one input or metadata byte read.
    assert data and all(r.startswith("GET") and "list-type=2" in r for r in data), data
    # The output bucket: completion records read, only bookkeeping written.
    completion = (".summary.json", "/info", ".failed.json")
    for request in out:
        method, path = request.split()[:2]
        key = path.split("?")[0].removeprefix(f"/{OUT}").lstrip("/")
        # (An empty key: tensorstore asks the bucket's region.)
        if method in ("GET", "HEAD") and "list-type=2" not in path and key:
            assert key.endswith(completion) or key.startswith("v1/cryoet-ng-index/"), request
        elif method in ("PUT", "DELETE"):
            assert key.startswith("v1/cryoet-ng-index/"), request
    # The two datasets' leases: taken, then deleted (a bulk DELETE of one key each).
    leases = [r for r in out if "/cryoet-ng-index/locks/" in r and r.startswith("PUT")]
    assert len(leases) == 2 and sum(r.startswith(f"POST /{OUT}?delete") for r in out) == 2
