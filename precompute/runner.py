"""Run one job: skip it when its output is current, else convert, fingerprint, mark done.

:func:`execute` is what the batch ships to a worker (in-process or Dask). It never
raises for a job's own problems: bad input (:class:`InputError`) and unexpected
exceptions alike become a failed :class:`Outcome` naming the file, so one broken input
never stops a batch.

Completion protocol: a converter writes its output folder atomically and then its summary;
the runner then rewrites that summary (atomically) with the fingerprint added. Only a
summary *with the right fingerprint* and an existing output mark a job as done, so a job
killed at any point (before the output rename, between output and summary, between the
converter's summary and the runner's) is simply redone on the next run.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryoet_ng.catalogue import POINT_SHAPES, VOLUME_SHAPES
from cryoet_ng.config import Config
from cryoet_ng.summaries import Summary
from precompute.errors import InputError
from precompute.fingerprint import fingerprint
from precompute.jobs import AnnotationJob, Job, TomogramJob

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one job; small and picklable, sent back from workers."""

    job: str  # Job.name
    status: Status
    seconds: float
    output: str
    error: dict[str, Any] | None = None  # InputError.to_json() (+ "type"/"traceback")

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "job": self.job,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "output": self.output,
        }
        if self.error is not None:
            obj["error"] = self.error
        return obj


def run_job(job: Job, config: Config) -> Summary:
    """Convert one job with the converter of its shape; returns the converter's summary."""
    if isinstance(job, TomogramJob):
        from precompute import tomogram

        return tomogram.compute_stats(job, config.precompute.contrast_clip_fraction)
    if job.shape in POINT_SHAPES:
        from precompute import points

        return points.convert(job, config.precompute, config.layers)
    if job.shape in VOLUME_SHAPES:
        from precompute import segmentation

        return segmentation.convert(job, config.precompute)
    raise InputError(job.source, f"no converter for shape {job.shape!r}")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def output_of(job: Job) -> Path:
    """The path a job produces: the output folder, or the summary for tomogram statistics."""
    return job.output if isinstance(job, AnnotationJob) else job.summary


def is_current(job: Job, expected: str) -> bool:
    """True when the job's summary carries ``expected`` and its output exists."""
    try:
        recorded = json.loads(job.summary.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return False  # missing, half-written by another tool, or not an object: redo
    if recorded != expected:
        return False
    return not isinstance(job, AnnotationJob) or (job.output / "info").is_file()


def execute(job: Job, config: Config, force: bool = False) -> Outcome:
    """Skip or run ``job``; never raises for the job's own failures."""
    start = time.perf_counter()
    output = str(output_of(job))
    try:
        expected = fingerprint(job, config)
        if not force and is_current(job, expected):
            return Outcome(job.name, "skipped", time.perf_counter() - start, output)
        summary = run_job(job, config)
        summary.fingerprint = expected
        # Name the output and the input relatively (to the summary's folder and to the data
        # root), so that staged (object-store) and relocated trees carry no machine-local
        # path and two copies of one tree give byte-identical summaries.
        if isinstance(job, AnnotationJob):
            summary.extra["output"] = job.output.name
        summary.extra["source"] = _relative(job.source, config.data_root)
        summary.write(job.summary)  # the completion marker, written last
    except InputError as exc:
        return Outcome(job.name, "failed", time.perf_counter() - start, output, exc.to_json())
    except Exception as exc:  # a converter bug must not end the batch; report it with its file
        error = {
            "file": str(job.source),
            "line": None,
            "message": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8),
        }
        return Outcome(job.name, "failed", time.perf_counter() - start, output, error)
    return Outcome(job.name, "done", time.perf_counter() - start, output)
