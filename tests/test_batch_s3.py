"""Batch precompute to an S3 output root (moto's server standing in for S3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_support import empty_bucket, local_hashes, remote_hashes, s3_environment

from cryoet_ng_cli import main as cli

for _module in ("precompute.points", "precompute.segmentation", "precompute.tomogram"):
    pytest.importorskip(_module)
boto3 = pytest.importorskip("boto3")

BUCKET = "cryoet-outputs"
PREFIX = "precomputed/v1"


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    s3_environment(monkeypatch, s3_endpoint)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield client
    empty_bucket(client, BUCKET)


def test_s3_output_matches_local_and_resumes(s3, sample_copy: Path, tmp_path: Path) -> None:
    tree = sample_copy
    local = tmp_path / "local"
    assert cli(["precompute", str(tree), "--out", str(local), "--workers", "1"]) == 0
    expected = local_hashes(local)

    url = f"s3://{BUCKET}/{PREFIX}"
    report = tmp_path / "report.json"
    argv = ["precompute", str(tree), "--out", url, "--workers", "1", "--report", str(report)]
    assert cli(argv) == 0
    # Same bytes, no staging leftovers, no temporaries.
    assert remote_hashes(s3, BUCKET, PREFIX) == expected
    counts = json.loads(report.read_text())["counts"]
    assert counts["done"] == counts["total"]

    # Second run: the remote summaries mark everything done.
    assert cli(argv) == 0
    counts = json.loads(report.read_text())["counts"]
    assert counts["skipped"] == counts["total"] and counts["done"] == 0

    # A remote output whose summary is gone (upload interrupted) is redone, stale keys removed.
    summary_key = next(k for k in expected if k.endswith("_point.summary.json"))
    s3.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/{summary_key}")
    stale_key = f"{PREFIX}/{summary_key[: -len('.summary.json')]}/stale-file"
    s3.put_object(Bucket=BUCKET, Key=stale_key, Body=b"old")
    assert cli(argv) == 0
    counts = json.loads(report.read_text())["counts"]
    assert counts["done"] == 1
    assert remote_hashes(s3, BUCKET, PREFIX) == expected


def test_s3_failure_record_written_then_removed(s3, sample_copy: Path) -> None:
    """A failed job leaves ``<output>.failed.json`` under the remote root; a later success
    (here a skip of the unchanged output) removes it, as on a local root."""
    tree = sample_copy
    ndjson = next(tree.glob("10001/TS_100/Reconstructions/*/Annotations/*/nucleosome-*.ndjson"))
    url = f"s3://{BUCKET}/{PREFIX}"
    argv = ["precompute", str(tree), "--out", url, "--workers", "1", "--runs", "TS_100"]
    assert cli(argv) == 0
    original = ndjson.read_text()
    ndjson.write_text(original + '{"type": "point"}\n')
    assert cli(argv) == 1
    records = [k for k in remote_hashes(s3, BUCKET, PREFIX) if k.endswith(".failed.json")]
    assert len(records) == 1 and "nucleosome" in records[0]
    ndjson.write_text(original)
    assert cli(argv) == 0
    assert not [k for k in remote_hashes(s3, BUCKET, PREFIX) if k.endswith(".failed.json")]
