"""The tree index (build, incremental refresh counted in store reads, lazy load) and bad
stores: a missing bucket, a prefix that is not a portal tree, throttled, failing and
stalled requests, a file changed between listing and reading, a truncated zarr chunk."""

from __future__ import annotations

import gzip
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_support import empty_bucket, faulty_proxy, s3_environment, upload

from cryoet_ng import index
from cryoet_ng.catalogue import Catalogue
from cryoet_ng.store import Changed, open_store
from cryoet_ng_cli import main as cli

boto3 = pytest.importorskip("boto3")

BUCKET = "tree-bucket"
ANN = "10000/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/101/cytosolic_ribosome-1.0.json"


def test_index_refresh_rereads_only_the_changed_run(sample_root: Path, tmp_path: Path) -> None:
    tree, out = tmp_path / "tree", tmp_path / "out"
    shutil.copytree(sample_root, tree)
    records, first = index.refresh(tree, out)
    catalogue = Catalogue.from_records(open_store(tree), records, first.warnings)
    assert first.runs == 3 and first.runs_read == 3 and first.reads == 19 and first.written == 2
    assert sorted(catalogue.datasets) == ["10000", "10001"]

    _, again = index.refresh(tree, out)
    assert (again.runs, again.runs_read, again.reads, again.written) == (3, 0, 0, 0)

    meta = json.loads((tree / ANN).read_text())
    meta["annotation_object"]["name"] = "renamed ribosome"
    (tree / ANN).write_text(json.dumps(meta))
    records, changed = index.refresh(tree, out)
    catalogue = Catalogue.from_records(open_store(tree), records, changed.warnings)
    assert (changed.runs_read, changed.reads, changed.written) == (1, 1, 1)
    run = catalogue.run("10000", "TS_026")
    assert run is not None
    assert next(a for a in run.annotations if a.id == "101").object_name == "renamed ribosome"

    # Lazy: the index answers run names and counts, and loads one dataset when asked.
    stored = index.TreeIndex.load(open_store(out))
    assert stored is not None and stored.runs_of("10001") == {
        "TS_100": {"tomograms": 1, "annotations": 2}
    }
    lazy = Catalogue.from_index(open_store(tree), open_store(out))
    assert lazy.datasets.loaded == []  # type: ignore[attr-defined]
    assert lazy.run("10000", "TS_026") is not None
    assert lazy.datasets.loaded == ["10000"]  # type: ignore[attr-defined]

    # --runs: only that run is listed; the rest of the index is kept.
    _, only = index.refresh(tree, out, runs=["TS_100"])
    assert only.runs == 1 and only.datasets == 1
    assert sorted(index.TreeIndex.load(open_store(out)).dataset_ids) == ["10000", "10001"]


def _rewrite(path: Path, edit: Any) -> None:
    data = json.loads(gzip.decompress(path.read_bytes()))
    edit(data)
    path.write_bytes(gzip.compress(json.dumps(data).encode()))


def test_damaged_index_files_are_named_not_raised(sample_root: Path, tmp_path: Path) -> None:
    """A published index is someone else's file: a wrong shape in the top file or in one
    dataset's record is a warning naming that file, and the other datasets still load."""
    tree, out = tmp_path / "tree", tmp_path / "out"
    shutil.copytree(sample_root, tree)
    index.refresh(tree, out)
    folder = out / index.FOLDER
    stored = index.TreeIndex.load(open_store(out))
    assert stored is not None
    damaged = folder / "datasets" / stored.top["datasets"]["10001"]["file"]
    _rewrite(damaged, lambda record: record["runs"]["TS_100"].__setitem__("files", 5))
    lazy = Catalogue.from_index(open_store(tree), open_store(out))
    assert lazy.run("10000", "TS_026") is not None
    assert lazy.run("10001", "TS_100") is None
    (warning,) = [w for w in lazy.warnings if damaged.name in str(w)]
    assert "damaged index file" in str(warning) and "files" in str(warning)

    _rewrite(folder / "index.json.gz", lambda top: top["datasets"]["10000"].pop("file"))
    broken = Catalogue.from_index(open_store(tree), open_store(out))
    assert list(broken.datasets) == []
    assert any("index.json.gz" in str(w) and "file" in str(w) for w in broken.warnings)


def test_catalogue_shows_alignment_matching(sample_root: Path, tmp_path: Path) -> None:
    """An annotation of another alignment is left out, as the portal does."""
    tree = tmp_path / "tree"
    shutil.copytree(sample_root, tree)
    meta = json.loads((tree / ANN).read_text())
    meta["alignment_metadata_path"] = "10000/TS_026/Alignments/101/alignment_metadata.json"
    (tree / ANN).write_text(json.dumps(meta))
    run = Catalogue.scan(tree).run("10000", "TS_026")
    assert run is not None
    tomogram = run.tomograms[0]
    ids = [(a.voxel_spacing, a.id) for a in run.annotations_for(tomogram)]
    assert (13.48, "101") not in ids and (13.48, "100") in ids
    # An annotation without a link: kept only while the run has a single alignment.
    meta.pop("alignment_metadata_path")
    (tree / ANN).write_text(json.dumps(meta))
    run = Catalogue.scan(tree).run("10000", "TS_026")
    assert run is not None and len(run.alignments) == 1
    assert (13.48, "101") in [(a.voxel_spacing, a.id) for a in run.annotations_for(tomogram)]


@pytest.fixture
def bucket(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, sample_root: Path
) -> Iterator[object]:
    s3_environment(monkeypatch, s3_endpoint)
    monkeypatch.setenv("CRYOET_NG_STORE_TIMEOUT", "2")
    monkeypatch.setenv("CRYOET_NG_STORE_RETRIES", "2")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    upload(client, BUCKET, sample_root, "tree")
    yield client
    empty_bucket(client, BUCKET)


def test_missing_bucket_and_non_portal_prefix(bucket, tmp_path: Path) -> None:
    missing = Catalogue.scan("s3://no-such-bucket/tree")
    assert missing.datasets == {}
    assert "no-such-bucket" in str(missing.warnings[0]) and missing.warnings[0].skipped
    # A missing root is a usage error (exit 2), found before anything is written.
    assert cli(["precompute", "s3://no-such-bucket/tree", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
    other = Catalogue.scan(f"s3://{BUCKET}/tree/10000/TS_026")  # a run, not a tree
    assert "not a portal data tree" in other.warnings[0].message
    empty = Catalogue.scan(f"s3://{BUCKET}/nothing-here")
    assert "empty or missing" in empty.warnings[0].message


def test_throttled_requests_are_retried(bucket, s3_endpoint: str, monkeypatch) -> None:
    failures: dict[str, int] = {}

    def throttle(method: str, path: str):
        # Every metadata GET answers 503 SlowDown once, then goes through.
        if method == "GET" and path.endswith(".json") and failures.get(path, 0) < 1:
            failures[path] = failures.get(path, 0) + 1
            return 503, b"<Error><Code>SlowDown</Code></Error>"
        return None

    with faulty_proxy(s3_endpoint, throttle) as (url, seen):
        s3_environment(monkeypatch, url)
        catalogue = Catalogue.scan(f"s3://{BUCKET}/tree")
    assert catalogue.warnings == [] and len(list(catalogue.runs())) == 3
    assert len(failures) == 19 and sum(1 for s in seen if s.startswith("GET")) > 38


def test_failing_and_stalled_requests_fail_naming_the_key(bucket, s3_endpoint, monkeypatch) -> None:
    def broken(method: str, path: str):
        if path.split("?")[0].endswith("TS_027/run_metadata.json"):
            return 500, b"<Error><Code>InternalError</Code></Error>"
        if path.split("?")[0].endswith("TS_100/run_metadata.json"):
            return "hang"
        return None

    with faulty_proxy(s3_endpoint, broken) as (url, _seen):
        s3_environment(monkeypatch, url)
        start = time.monotonic()
        catalogue = Catalogue.scan(f"s3://{BUCKET}/tree")
        elapsed = time.monotonic() - start
    messages = {str(w.path): w.message for w in catalogue.warnings}
    failing = f"s3://{BUCKET}/tree/10000/TS_027/run_metadata.json"
    stalled = f"s3://{BUCKET}/tree/10001/TS_100/run_metadata.json"
    assert "500" in messages[failing]
    assert "timed out" in messages[stalled].lower() or "timeout" in messages[stalled].lower()
    assert elapsed < 25  # 2 s timeout, 2 retries: bounded, never a hang
    # The other runs are read; the index of such a scan is not trusted (read again later).
    assert catalogue.run("10000", "TS_026") is not None
    assert catalogue.run("10000", "TS_026").tomograms


def test_file_changed_between_listing_and_reading(bucket) -> None:
    store = open_store(f"s3://{BUCKET}/tree")
    key = ANN
    entry = store.head(key)
    assert entry is not None
    bucket.put_object(Bucket=BUCKET, Key=f"tree/{key}", Body=b'{"annotation_object": {}}')
    with pytest.raises(Changed, match="changed between listing and reading") as caught:
        store.read(key, entry.version)
    assert key in str(caught.value)
    # In a scan: the file is named and its run's record is not trusted.
    scanner_store = open_store(f"s3://{BUCKET}/tree")
    original = scanner_store.list_tree

    def list_then_change(prefix: str):
        entries = original(prefix)
        if prefix.endswith("TS_026/Reconstructions"):
            bucket.put_object(Bucket=BUCKET, Key=f"tree/{key}", Body=b"{}")
        return entries

    scanner_store.list_tree = list_then_change  # type: ignore[method-assign]
    try:
        from cryoet_ng.treescan import Scanner

        record = Scanner(scanner_store).run_record("10000/TS_026", None)
    finally:
        del scanner_store.list_tree
    assert record["signature"] is None
    assert "changed between listing and reading" in record["errors"][ANN.split("TS_026/")[1]]


def test_truncated_zarr_chunk_fails_that_job_only(bucket, tmp_path: Path) -> None:
    keys = [
        o["Key"]
        for o in bucket.list_objects_v2(Bucket=BUCKET, Prefix="tree/10000/TS_026")["Contents"]
        if "cytoplasm-1.0_segmentationmask.zarr/0/0/0/0" in o["Key"]
    ]
    (chunk,) = keys
    data = bucket.get_object(Bucket=BUCKET, Key=chunk)["Body"].read()
    bucket.put_object(Bucket=BUCKET, Key=chunk, Body=data[: len(data) // 2])
    report = tmp_path / "r.json"
    argv = ["precompute", f"s3://{BUCKET}/tree", "--out", str(tmp_path / "out"), "--workers", "1"]
    assert cli([*argv, "--report", str(report)]) == 1
    result = json.loads(report.read_text())
    assert (
        result["counts"]["failed"] == 1
        and result["counts"]["done"] == result["counts"]["total"] - 1
    )
    (failed,) = [j for j in result["jobs"] if j["status"] == "failed"]
    assert "cytoplasm-1.0_segmentationmask.zarr" in failed["error"]["file"]
    assert failed["error"]["file"].startswith(f"s3://{BUCKET}/tree/")


def test_local_listing_has_every_file_and_empty_folder(sample_copy: Path) -> None:
    """The scandir walk of a local tree lists what pathlib finds (files with their sizes,
    empty folders as ``key/``), and not what a link to a folder outside holds."""
    from cryoet_ng.store import LocalStore

    run = sample_copy / "10000" / "TS_026"
    (run / "Reconstructions" / "empty").mkdir()
    (run / "Reconstructions" / "linked").symlink_to(sample_copy / "10001")
    expected = {
        f"{p.relative_to(sample_copy).as_posix()}{'/' if p.is_dir() else ''}": (
            0 if p.is_dir() else p.stat().st_size
        )
        for p in (run / "Reconstructions").rglob("*")
        if "linked" not in p.parts and (p.is_file() or (p.is_dir() and not any(p.iterdir())))
    }
    listed = LocalStore(sample_copy).list_tree("10000/TS_026/Reconstructions")
    assert {e.key: e.size for e in listed} == expected
    assert "10000/TS_026/Reconstructions/empty/" in expected
