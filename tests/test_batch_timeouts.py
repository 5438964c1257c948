"""No job can hang a batch: every job runs under precompute.job_timeout, in this process and
on Dask (where the worker still running it is restarted), and jobs no worker ever takes
fail after precompute.start_timeout.

The jobs here are a job type of this module whose converter sleeps: the converters of the
project have no input that makes them hang on purpose.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from cryoet_ng.config import Config, PrecomputeConfig
from cryoet_ng.summaries import Summary
from precompute.execution import Plan, outcomes
from precompute.jobs import Job


@dataclass(frozen=True)
class SleepJob(Job):
    """Sleeps ``seconds``, then writes an empty tomogram summary."""

    job_type: ClassVar[str] = "sleep"
    inputs: ClassVar[tuple[str, ...]] = ("Sleep",)
    location_fields: ClassVar[tuple[str, ...]] = ("source", "folder")

    source: Path
    folder: Path
    seconds: float
    dataset_id: str = "1"
    run_name: str = "r"
    signature: str | None = None
    known_fingerprint: str | None = None

    @property
    def name(self) -> str:
        return f"{self.dataset_id}/{self.run_name}/sleep {self.seconds:g}"

    @property
    def summary(self) -> Path:
        return self.folder / f"sleep-{self.seconds:g}.summary.json"

    def convert(self, config: Config) -> Summary:
        time.sleep(self.seconds)
        return Summary(kind="tomogram")


def make_config(tmp_path: Path, **precompute: float) -> Config:
    return Config(data_root=tmp_path, precompute=PrecomputeConfig(**precompute))  # type: ignore[arg-type]


def jobs_in(tmp_path: Path, *seconds: float) -> list[Job]:
    source = tmp_path / "input.txt"
    source.write_text("input")
    return [SleepJob(source, tmp_path / "out", s) for s in seconds]


def test_in_process_job_times_out_and_the_batch_goes_on(tmp_path: Path) -> None:
    config = make_config(tmp_path, job_timeout=0.5)
    started = time.monotonic()
    results = list(outcomes(jobs_in(tmp_path, 60, 0), config, Plan(workers=1), in_process=True))
    assert time.monotonic() - started < 10
    (_, hung), (_, quick) = results
    assert hung.status == "failed" and hung.timed_out and hung.error is not None
    assert "timed out after 0.5 s (precompute.job_timeout)" in hung.error.message
    assert hung.error.file == str(tmp_path / "input.txt")
    assert quick.status == "done" and not quick.timed_out


@pytest.mark.slow
def test_dask_job_times_out_and_its_worker_is_replaced(tmp_path: Path) -> None:
    """One worker: the timed-out job's thread would hold it, so it is restarted, and the
    next job still runs."""
    config = make_config(tmp_path, job_timeout=1.0)
    started = time.monotonic()
    results = dict(
        (job.name, outcome)
        for job, outcome in outcomes(
            jobs_in(tmp_path, 120, 0), config, Plan(workers=1), in_process=False
        )
    )
    assert time.monotonic() - started < 90
    hung, quick = results["1/r/sleep 120"], results["1/r/sleep 0"]
    assert hung.status == "failed" and hung.timed_out, hung
    assert quick.status == "done", quick


@pytest.mark.slow
def test_jobs_no_worker_takes_fail_after_the_start_timeout(tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    config = make_config(tmp_path, start_timeout=1.0)
    with LocalCluster(
        n_workers=0, processes=False, dashboard_address=None, silence_logs=logging.ERROR
    ) as cluster:
        plan = dataclasses.replace(Plan(workers=1), scheduler=cluster.scheduler_address)
        started = time.monotonic()
        results = [o for _, o in outcomes(jobs_in(tmp_path, 0, 0), config, plan, False)]
    assert time.monotonic() - started < 30
    assert [o.status for o in results] == ["failed", "failed"]
    assert all(o.error is not None and "cannot start" in o.error.message for o in results)
