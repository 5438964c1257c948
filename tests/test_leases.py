"""Dataset locks on an object-store output root: lease objects on moto's S3 server."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_support import s3_buckets, upload

from cryoet_ng.store import open_store
from cryoet_ng_cli import main as cli
from precompute.leases import Lease, store_locks
from precompute.locks import LOCK_FOLDER, LockTimeout

pytest.importorskip("boto3")

BUCKET = "lease-out"
URL = f"s3://{BUCKET}/v1"


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with s3_buckets(s3_endpoint, monkeypatch, BUCKET, "lease-data") as client:
        yield client


def lease_object(s3: Any, dataset: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=BUCKET, Key=f"v1/{LOCK_FOLDER}/{dataset}.lock")["Body"]
    except s3.exceptions.NoSuchKey:
        return None
    info: dict[str, Any] = json.loads(body.read())
    return info


def put_lease(s3: Any, dataset: str, expires: float) -> None:
    info = {"pid": 4242, "host": "elsewhere", "started": "then", "command": "cryoet-ng x"}
    body = json.dumps(info | {"token": "t", "expires": expires})
    s3.put_object(Bucket=BUCKET, Key=f"v1/{LOCK_FOLDER}/{dataset}.lock", Body=body)


def test_one_holder_at_a_time_renewed_and_released(s3: Any) -> None:
    store = open_store(URL)
    with store_locks(URL, ["10001", "10000"], wait=0, renew_every=0.2):
        first = lease_object(s3, "10000")
        assert first is not None and lease_object(s3, "10001") is not None
        other = Lease(store, "10000")
        assert not other.try_take() and "pid" in other.holder
        held = r"dataset 10000 of s3://lease-out/v1 .* pid"
        with pytest.raises(LockTimeout, match=held), store_locks(URL, ["10000"], wait=0.3):
            pass
        time.sleep(0.6)
        renewed = lease_object(s3, "10000")
        assert renewed is not None and renewed["expires"] > first["expires"]
        assert renewed["token"] == first["token"]
    assert lease_object(s3, "10000") is None and lease_object(s3, "10001") is None


def test_expired_lease_is_taken_over_once(s3: Any, caplog: pytest.LogCaptureFixture) -> None:
    put_lease(s3, "10000", expires=time.time() - 1)
    store = open_store(URL)
    first, second = Lease(store, "10000"), Lease(store, "10000")
    with caplog.at_level(logging.WARNING, logger="precompute.leases"):
        assert first.try_take()
    assert "took over the expired lease of pid 4242 on elsewhere" in caplog.text
    assert not second.try_take()  # the new lease has not expired
    # A holder whose lease was taken over does not delete the new holder's lease.
    put_lease(s3, "10000", expires=time.time() + 60)
    first.release()
    assert lease_object(s3, "10000") is not None


def test_precompute_waits_for_a_live_lease_and_takes_an_expired_one(
    s3: Any, sample_root: Path, tmp_path: Path
) -> None:
    upload(s3, "lease-data", sample_root, "tree")
    argv = ["precompute", "s3://lease-data/tree", "--out", URL, "--workers", "1"]
    argv += ["--runs", "TS_027"]
    put_lease(s3, "10000", expires=time.time() + 300)
    assert cli([*argv, "--lock-wait", "0"]) == 2  # held: a usage error naming the holder
    put_lease(s3, "10000", expires=time.time() - 1)  # its holder was killed
    report = tmp_path / "r.json"
    assert cli([*argv, "--lock-wait", "0", "--report", str(report)]) == 0
    counts = json.loads(report.read_text())["counts"]
    assert counts["done"] == counts["total"] > 0
    assert lease_object(s3, "10000") is None  # released at the end
