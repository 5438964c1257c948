"""Batch precompute over the whole test-size sample tree: parallel, resumable, observable.

One reference run (in-process) is made per module; every other test redoes the same
output root and compares a hash of every output file against it, so "identical bytes"
is checked for the Dask paths, the killed-and-resumed run and ``--force``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cryoet_ng.atomic import TMP_PREFIX
from cryoet_ng_cli import main as cli
from precompute.locks import LOCK_FOLDER

for _module in ("precompute.points", "precompute.segmentation", "precompute.tomogram"):
    pytest.importorskip(_module)


ONE = ("--workers", "1")  # in-process
# Batches with more input bytes than this run on Dask: 0 sends every batch of 2+ jobs there.
DASK_ALWAYS = "CRYOET_NG__PRECOMPUTE__IN_PROCESS_BYTES"


def outputs_of(out: Path) -> dict[str, str]:
    """sha256 of every file under every NeuroglancerPrecompute folder, by relative path."""
    hashes = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and "NeuroglancerPrecompute" in path.parts:
            hashes[path.relative_to(out).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob(f"{TMP_PREFIX}*")]


def precompute(tree: Path, out: Path, report: Path, *extra: str) -> tuple[int, dict]:
    code = cli(["precompute", str(tree), "--out", str(out), "--report", str(report), *extra])
    return code, json.loads(report.read_text())


class Reference:
    def __init__(self, tree: Path, out: Path, hashes: dict[str, str], report: dict) -> None:
        self.tree, self.out, self.hashes, self.report = tree, out, hashes, report
        self.total = report["counts"]["total"]


@pytest.fixture(scope="module")
def reference(
    copy_sample: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory
) -> Reference:
    base = tmp_path_factory.mktemp("batch")
    tree = copy_sample(base / "data")
    out = base / "out"
    code, report = precompute(tree, out, base / "report.json", "--workers", "1")
    assert code == 0, report["failures"]
    return Reference(tree, out, outputs_of(out), report)


def test_reference_run_converts_every_job(reference: Reference) -> None:
    report = reference.report
    assert report["ok"] is True
    assert report["failures"] == [] and report["warnings"] == []
    assert report["counts"]["done"] == reference.total > 10, report["jobs"]
    assert {job["status"] for job in report["jobs"]} == {"done"}
    # Every summary records the fingerprint of its inputs.
    summaries = [p for p in reference.out.rglob("*.summary.json")]
    assert len(summaries) == reference.total
    assert all(json.loads(p.read_text())["fingerprint"].startswith("blake2b:") for p in summaries)
    assert leftovers(reference.out) == []


def test_validate_passes_on_the_reference(reference: Reference, capsys) -> None:
    assert cli(["validate", str(reference.out)]) == 0
    folders = [j for j in reference.report["jobs"] if "/tomogram " not in j["job"]]
    assert f"{len(folders)} outputs checked" in capsys.readouterr().out


def test_second_run_skips_and_force_redoes(reference: Reference, tmp_path: Path) -> None:
    # Every file but the batch locks (each batch writes its name into them).
    mtimes = {
        p: p.stat().st_mtime_ns
        for p in reference.out.rglob("*")
        if p.is_file() and not p.relative_to(reference.out).as_posix().startswith(LOCK_FOLDER)
    }
    code, report = precompute(reference.tree, reference.out, tmp_path / "r.json", "--workers", "1")
    assert code == 0, report["jobs"]
    assert report["counts"]["skipped"] == reference.total and report["counts"]["done"] == 0, report[
        "jobs"
    ]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing was rewritten

    code, report = precompute(
        reference.tree, reference.out, tmp_path / "f.json", "--workers", "1", "--force"
    )
    assert code == 0 and report["counts"]["done"] == reference.total, report["jobs"]
    assert any(p.stat().st_mtime_ns != t for p, t in mtimes.items())
    assert outputs_of(reference.out) == reference.hashes


def test_changed_input_redoes_only_its_job(reference: Reference, tmp_path: Path) -> None:
    ndjson = sorted(reference.tree.rglob("*_point.ndjson"))[0]
    original = ndjson.read_bytes()
    ndjson.write_bytes(original + b"\n")  # a trailing blank line: new bytes, same points
    try:
        code, report = precompute(reference.tree, reference.out, tmp_path / "r.json", *ONE)
        assert code == 0, report["jobs"]
        assert report["counts"]["done"] == 1, report["jobs"]
        assert report["counts"]["skipped"] == reference.total - 1, report["jobs"]
    finally:
        ndjson.write_bytes(original)
        precompute(reference.tree, reference.out, tmp_path / "back.json", "--workers", "1")
    assert outputs_of(reference.out) == reference.hashes


def test_dask_local_cluster_gives_identical_bytes(
    reference: Reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test tree is small enough to run in process by default: make it go to Dask.
    monkeypatch.setenv(DASK_ALWAYS, "0")
    shutil.rmtree(reference.out)
    code, report = precompute(reference.tree, reference.out, tmp_path / "r.json", "--workers", "2")
    assert code == 0, report["failures"]
    assert report["executor"] == "dask local cluster (2 workers)"
    assert report["counts"]["done"] == reference.total, report["jobs"]
    assert outputs_of(reference.out) == reference.hashes


def test_existing_scheduler_gives_identical_bytes(reference: Reference, tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    # One run (--runs) redone with --force keeps this test short; the whole tree went
    # through the batch's own cluster above.
    before = {p: p.stat().st_mtime_ns for p in reference.out.rglob("*") if "TS_100" in p.parts}
    with LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        code, report = precompute(
            reference.tree,
            reference.out,
            tmp_path / "r.json",
            *("--scheduler", address, "--runs", "TS_100", "--force"),
        )
    assert code == 0, report["failures"]
    assert report["executor"] == f"dask scheduler {address}"
    assert report["counts"]["done"] == report["counts"]["total"] >= 2, report["jobs"]
    assert all("/TS_100/" in job["job"] for job in report["jobs"])
    after = {p: p.stat().st_mtime_ns for p in before}
    assert all(after[p] != before[p] for p in before if p.name.endswith(".summary.json"))
    assert outputs_of(reference.out) == reference.hashes


def test_killed_run_resumes_to_identical_bytes(reference: Reference, tmp_path: Path) -> None:
    shutil.rmtree(reference.out)
    argv = [sys.executable, "-m", "cryoet_ng_cli", "precompute", str(reference.tree)]
    argv += ["--out", str(reference.out), "--workers", "2"]
    # Its own session, so SIGKILL reaches the CLI and every Dask process at once (a crash).
    env = dict(os.environ, **{DASK_ALWAYS: "0"})
    proc = subprocess.Popen(argv, start_new_session=True, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while not list(reference.out.rglob("*.summary.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the batch finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = len(list(reference.out.rglob("*.summary.json")))
    assert 0 < finished < reference.total

    code, report = precompute(reference.tree, reference.out, tmp_path / "r.json", "--workers", "1")
    assert code == 0, report["failures"]
    assert report["counts"]["done"] >= reference.total - finished, report["jobs"]
    assert outputs_of(reference.out) == reference.hashes
    assert leftovers(reference.out) == []


def test_stale_temporaries_and_orphan_outputs_are_cleaned(
    reference: Reference, tmp_path: Path
) -> None:
    summary = sorted(reference.out.rglob("*_point.summary.json"))[0]
    summary.unlink()  # killed between the output rename and its summary
    folder = summary.parent
    (folder / f"{TMP_PREFIX}orphan-123").mkdir()
    (folder / f"{TMP_PREFIX}orphan-123" / "info").write_text("{}")
    (folder / f"{TMP_PREFIX}x.summary.json-abc").write_text("{")
    code, report = precompute(reference.tree, reference.out, tmp_path / "r.json", "--workers", "1")
    assert code == 0, report["jobs"]
    assert report["counts"]["done"] == 1, report["jobs"]
    assert leftovers(reference.out) == []
    assert outputs_of(reference.out) == reference.hashes


def test_small_batch_runs_in_process(reference: Reference, tmp_path: Path) -> None:
    """Below precompute.in_process_bytes no Dask cluster is started, even with 2 workers."""
    code, report = precompute(reference.tree, reference.out, tmp_path / "r.json", "--workers", "2")
    assert code == 0, report["failures"]
    assert report["executor"] == "in-process"
    assert report["counts"]["skipped"] == reference.total


def test_overlapping_batches_wait_and_both_finish(reference: Reference, tmp_path: Path) -> None:
    """A second batch on the same output root waits for the first (naming it), then finds
    its work done; neither removes the other's work in progress. Both print progress lines
    (stderr is a pipe, not a terminal)."""
    shutil.rmtree(reference.out)
    env = dict(os.environ, CRYOET_NG__PRECOMPUTE__PROGRESS_SECONDS="0.2")
    argv = [sys.executable, "-m", "cryoet_ng_cli", "precompute", str(reference.tree)]
    argv += ["--out", str(reference.out), "--workers", "1", "--report"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": env}
    first = subprocess.Popen([*argv, str(tmp_path / "first.json")], **pipes)  # type: ignore[call-overload]
    second = None
    try:
        lock = reference.out / LOCK_FOLDER / "10000.lock"
        deadline = time.monotonic() + 120
        while f'"pid": {first.pid}' not in (lock.read_text() if lock.exists() else ""):
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.05)
        second = subprocess.Popen([*argv, str(tmp_path / "second.json")], **pipes)  # type: ignore[call-overload]
        _, first_err = first.communicate(timeout=300)
        _, second_err = second.communicate(timeout=300)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert f"held by pid {first.pid}" in second_err
    first_report = json.loads((tmp_path / "first.json").read_text())
    second_report = json.loads((tmp_path / "second.json").read_text())
    assert first_report["counts"]["done"] == reference.total
    assert second_report["counts"]["skipped"] == reference.total
    assert outputs_of(reference.out) == reference.hashes
    assert leftovers(reference.out) == []
    lines = [line for line in first_err.splitlines() if line.startswith("precompute: ")]
    assert lines, first_err
    pattern = (
        r"precompute: \d+/\d+ jobs \(done \d+, skipped \d+, failed \d+\), [\d.e+-]+ jobs/s, "
        r"elapsed \S+, ETA \S+"
    )
    assert all(re.fullmatch(pattern, line) for line in lines), lines
    for err in (first_err, second_err):
        assert "Traceback" not in err and "Warning" not in err, err


def test_held_root_with_no_wait_exits_2_naming_the_holder(
    reference: Reference, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from precompute.locks import dataset_locks

    with dataset_locks(reference.out, ["10000"]):
        code = cli(
            ["precompute", str(reference.tree), "--out", str(reference.out), "--lock-wait", "0"]
        )
    assert code == 2
    err = capsys.readouterr().err
    assert f"dataset 10000 of {reference.out} is being precomputed by pid {os.getpid()}" in err
