"""One job where it runs: placed by its output root, run under its deadline, published,
its failure record written or removed.

:func:`run_task` is what the batch ships to a worker (or calls in this process) with the
job and its output root. Everything a job touches on disk happens here, on the machine that
runs it: on an object-store root the job is built in a private staging folder there and
uploaded from there (:mod:`precompute.output_roots`), so the driver and the workers share
nothing but the store. What comes back is an :class:`~precompute.runner.Outcome`: status,
seconds, the output's name as the root reports it (a URL on a store, never a path into a
worker's disk), the failure (messages cut of local roots) and the summary's fingerprint.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

from cryoet_ng.config import Config
from cryoet_ng.failures import FailureRecord
from cryoet_ng.store import TreePath
from precompute.errors import Failure
from precompute.jobs import Job
from precompute.output_roots import OutputRoot, Place
from precompute.runner import Outcome, execute, relative_to_root


def run_task(job: Job, root: OutputRoot, config: Config, force: bool) -> Outcome:
    """Skip or run ``job`` where this runs; never raises for the job's own problems (its
    input, its conversion, publishing it or updating its failure record)."""
    start = time.perf_counter()
    folder = root.url  # where outputs are built: named by the root's URL in messages
    try:
        with root.place(job, force) as place:
            folder = str(place.folder)
            outcome = execute_bounded(place.job, config, force)
            if outcome.status == "done":
                outcome = _publish(place, outcome)
            local = (config.data_root, config.out_root, root.local, place.folder)
            outcome = _record(place, outcome, config, local)
    except Exception as exc:  # staging or fetching failed: the job, not the batch
        failure = Failure(str(job.source), f"output root {root.url}: {exc}")
        outcome = Outcome(job.name, "failed", time.perf_counter() - start, "", failure)
    error = outcome.error
    if error is not None:
        error = dataclasses.replace(error, message=error.message.replace(folder, root.url))
    return dataclasses.replace(outcome, output=root.describe(job), error=error)


def execute_bounded(job: Job, config: Config, force: bool) -> Outcome:
    """:func:`~precompute.runner.execute` under ``precompute.job_timeout``: a job still
    running then gives a failed outcome with ``timed_out`` set (its thread keeps running:
    see :mod:`precompute.execution`)."""
    timeout = config.precompute.job_timeout
    if timeout <= 0:
        return execute(job, config, force)
    result: list[Outcome] = []
    thread = threading.Thread(
        target=lambda: result.append(execute(job, config, force)),
        name=f"job {job.name}",
        daemon=True,
    )
    started = time.perf_counter()
    thread.start()
    thread.join(timeout)
    if result:
        return result[0]
    message = f"timed out after {timeout:g} s (precompute.job_timeout)"
    error = Failure(str(job.source), message)
    seconds = time.perf_counter() - started
    return Outcome(job.name, "failed", seconds, str(job.target), error, timed_out=True)


def _publish(place: Place, outcome: Outcome) -> Outcome:
    """Publish a finished output; an upload error fails the job instead of the batch."""
    try:
        place.publish()
    except Exception as exc:
        error = Failure(str(place.job.source), f"publishing failed: {exc}")
        return dataclasses.replace(outcome, status="failed", error=error)
    return outcome


def _record(
    place: Place, outcome: Outcome, config: Config, local: tuple[Path | str, ...]
) -> Outcome:
    """Write the job's failure record when it failed, remove it otherwise.

    A record that cannot be written or removed is left to the driver (``recorded`` stays
    False), never fatal: the outputs themselves are right, only the stale/failed flag of
    the state would be.
    """
    try:
        if outcome.status == "failed":
            place.record_failure(failure_record(place.job, outcome, config.data_root, local))
        else:
            place.clear_failure()
    except Exception:
        return outcome
    return dataclasses.replace(outcome, recorded=True)


def cut_roots(message: str, roots: tuple[Path | str, ...]) -> str:
    """``message`` without machine-local roots (each cut to a relative name)."""
    texts = {str(r.resolve()) if isinstance(r, Path) else r for r in roots}
    for root in sorted(texts, key=len, reverse=True):
        message = message.replace(f"{root}/", "").replace(root, ".")
    return message


def failure_record(
    job: Job, outcome: Outcome, data_root: Path | str, roots: tuple[Path | str, ...]
) -> FailureRecord:
    """What ngstate tells people about a failed job: no machine-local paths (``roots`` are
    cut from the message; the file is named relative to ``data_root``)."""
    error = outcome.error or Failure(outcome.output, "failed")
    # The job's own input may lie on a store (a URL that Path would mangle).
    failed: TreePath = job.source if error.file == str(job.source) else Path(error.file)
    return FailureRecord(
        job=outcome.job,
        file=relative_to_root(failed, data_root),
        message=cut_roots(error.message, roots),
        line=error.line,
        failed_at=time.time(),
    )
