"""Run one job: skip it when its output is current, else convert, fingerprint, mark done.

:func:`execute` is what the batch ships to a worker (in-process or Dask). It never
raises for a job's own problems: bad input (:class:`InputError`) and unexpected
exceptions alike become a failed :class:`Outcome` naming the file, so one broken input
never stops a batch.

Completion protocol: a converter writes its output folder atomically and returns its
summary; only the runner writes the summary, atomically and last, with the fingerprint in
it. Only a summary *with the right fingerprint* and a complete output mark a job as done,
so a job killed at any point (before the output rename, between output and summary) is
simply redone on the next run.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryoet_ng.config import Config
from cryoet_ng.store import Location, TreePath
from cryoet_ng.summaries import Summary
from precompute.errors import Failure, InputError
from precompute.fingerprint import fingerprint
from precompute.jobs import Job

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one job; small and picklable, sent back from workers."""

    job: str  # Job.name
    status: Status
    seconds: float
    output: str  # Job.target
    error: Failure | None = None
    timed_out: bool = False  # failed because it ran past precompute.job_timeout
    # The summary's fingerprint (done or skipped): the driver records it with the input's
    # signature (precompute.signatures) without reading the summary, which may be on a
    # worker's disk or in a bucket.
    fingerprint: str | None = None
    # Its failure record was written or removed where it ran (precompute.task); the
    # driver records only the failures no worker saw (a lost worker, no worker at all).
    recorded: bool = False

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "job": self.job,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "output": self.output,
        }
        if self.error is not None:
            obj["error"] = self.error.to_json()
        return obj


def run_job(job: Job, config: Config) -> Summary:
    """Convert one job with its type's converter; returns the summary to write."""
    return job.convert(config)


def relative_to_root(path: TreePath, root: Path | str) -> str:
    """``path`` relative to ``root`` in posix form; its name alone when it lies elsewhere
    (a store Location's key is already relative to the data root)."""
    if isinstance(path, Location):
        return path.key
    if not isinstance(root, Path):
        return path.name
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def is_current(job: Job, expected: str) -> bool:
    """True when the job's summary carries ``expected`` and its output is complete."""
    try:
        recorded = json.loads(job.summary.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return False  # missing, half-written by another tool, or not an object: redo
    return recorded == expected and job.is_complete()


def execute(job: Job, config: Config, force: bool = False) -> Outcome:
    """Skip or run ``job``; never raises for the job's own failures."""
    start = time.perf_counter()
    output = str(job.target)
    try:
        expected = fingerprint(job, config)
        if not force and is_current(job, expected):
            seconds = time.perf_counter() - start
            return Outcome(job.name, "skipped", seconds, output, fingerprint=expected)
        summary = run_job(job, config)
        summary.fingerprint = expected
        # Name the output and the input relatively (to the summary's folder and to the data
        # root), so that staged (object-store) and relocated trees carry no machine-local
        # path and two copies of one tree give byte-identical summaries.
        if job.output_folder is not None:
            summary.extra["output"] = job.output_folder.name
        summary.extra["source"] = relative_to_root(job.source, config.data_root)
        summary.write(job.summary)  # the completion marker, written last
    except InputError as exc:
        return Outcome(job.name, "failed", time.perf_counter() - start, output, exc.failure())
    except Exception as exc:  # a converter bug must not end the batch; report it with its file
        error = Failure(
            file=str(job.source),
            message=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=8),
        )
        return Outcome(job.name, "failed", time.perf_counter() - start, output, error)
    return Outcome(job.name, "done", time.perf_counter() - start, output, fingerprint=expected)
