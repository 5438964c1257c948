"""Batch precompute: every unit of work of a data tree, resumable and in parallel.

:func:`run_batch` scans the tree, checks the selection (an unknown dataset or run, or a
data root that is not a portal tree, is a usage error before anything starts), takes the
output root's locks for the datasets it writes (:mod:`precompute.locks`), removes the
``.tmp-*`` leftovers of killed writers from the output folders it will write into, and runs
every job in this process or on Dask (:mod:`precompute.execution`: small batches in
process, every job under a timeout), reporting progress as it goes
(:mod:`precompute.progress`).

Each job decides on its worker whether its output is current (see :mod:`precompute.runner`),
so re-runs are cheap and a killed run resumes where it stopped.

``cryoet-ng precompute`` (:mod:`precompute.commands`) runs :func:`run_batch`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cryoet_ng import index
from cryoet_ng.atomic import remove_stale_temporaries
from cryoet_ng.catalogue import Catalogue
from cryoet_ng.commands import UsageError, dataset_ids, require_selection, require_tree, run_names
from cryoet_ng.config import Config
from cryoet_ng.failures import FailureRecord
from cryoet_ng.store import TreePath, open_store
from precompute.errors import Failure
from precompute.execution import Plan, outcomes
from precompute.job_types import REGISTRY
from precompute.jobs import Job
from precompute.locks import LockTimeout, dataset_locks
from precompute.output_roots import LocalRoot, OutputRoot
from precompute.progress import Progress
from precompute.report import BatchReport
from precompute.runner import Outcome, relative_to_root
from precompute.signatures import SignatureRecords

__all__ = ["Plan", "run_batch"]

log = logging.getLogger(__name__)


def run_batch(data_root: str | Path, out: OutputRoot, config: Config, plan: Plan) -> BatchReport:
    """Refresh the tree's index, check the selection, lock, clean leftovers, run every job
    and collect the outcomes. :class:`~cryoet_ng.commands.UsageError` before anything
    starts when the root or the selection names nothing, or when another batch holds the
    output root longer than ``precompute.lock_wait``."""
    start = time.perf_counter()
    known = require_tree(data_root, plan.datasets, plan.runs)  # before the index is written
    catalogue = _catalogue(data_root, out.url, list(plan.datasets) or None, list(plan.runs) or None)
    root = catalogue.root
    require_selection(
        catalogue,
        plan.datasets,
        plan.runs,
        known or dataset_ids(root),
        lambda: run_names(root, plan.datasets),
    )
    jobs = REGISTRY.jobs(catalogue, out.local, plan.runs)
    settings = config.precompute
    in_process = plan.in_process(jobs, settings.in_process_bytes)
    describe = plan.describe(in_process)
    report = BatchReport(str(catalogue.root), out.url, describe, list(catalogue.warnings))
    with _locks(out, jobs, settings.lock_wait, settings.progress_seconds):
        # Read under the locks: a batch that waited sees what the previous one recorded.
        signatures = SignatureRecords.of(out.url, out.local)
        jobs = signatures.apply(jobs, config)
        finished: list[Job] = []
        out.prepare(jobs, force=plan.force)
        removed = sum(remove_stale_temporaries(f) for f in {j.summary.parent for j in jobs})
        if removed:
            log.info("removed %d stale temporary entries of an interrupted run", removed)
        log.info("%d jobs from %s, running %s", len(jobs), catalogue.root, describe)
        with Progress(len(jobs), settings.progress_seconds) as progress:
            for job, outcome in outcomes(jobs, config, plan, in_process):
                if outcome.status == "done":
                    outcome = _publish(out, job, outcome)
                _note_outcome(out, job, outcome, config)
                if outcome.status != "failed":
                    finished.append(job)
                report.add(outcome)
                progress.add(outcome.status)
                if outcome.status == "failed" and outcome.error is not None:
                    log.error("failed %s: %s", outcome.job, outcome.error)
        signatures.update(finished, config)
    report.seconds = time.perf_counter() - start
    return report


@contextlib.contextmanager
def _locks(out: OutputRoot, jobs: list[Job], wait: float | None, every: float) -> Iterator[None]:
    """The locks of the datasets the jobs write into, on a local output root."""
    if not isinstance(out, LocalRoot):  # object stores: no lock (see precompute.locks)
        yield
        return

    def notify(message: str) -> None:
        print(f"precompute: {message}", file=sys.stderr, flush=True)

    try:
        with dataset_locks(out.local, {j.dataset_id for j in jobs}, wait, notify, every):
            yield
    except LockTimeout as exc:
        raise UsageError(str(exc)) from exc


def _catalogue(
    data_root: str | Path, index_root: str, datasets: list[str] | None, runs: list[str] | None
) -> Catalogue:
    """Refresh the index under ``index_root`` and return what was selected; a tree that
    cannot be listed (https://) is read from its published index."""
    store = open_store(data_root)
    if not store.can_list:
        return Catalogue.from_index(store, store, datasets, runs)
    records, report = index.refresh(data_root, index_root, datasets, runs)
    log.info("index: %s", report.line())
    return Catalogue.from_records(store, records, report.warnings)


def _publish(out: OutputRoot, job: Job, outcome: Outcome) -> Outcome:
    """Publish a finished output; an upload error fails the job instead of the batch."""
    try:
        out.publish(job)
    except Exception as exc:
        error = Failure(str(job.source), f"publishing failed: {exc}")
        return dataclasses.replace(outcome, status="failed", error=error)
    return outcome


def _note_outcome(out: OutputRoot, job: Job, outcome: Outcome, config: Config) -> None:
    """Write the job's failure record when it failed, remove it otherwise.

    A record that cannot be written or removed is logged, never fatal: the outputs
    themselves are right, only the stale/failed flag of the state would be.
    """
    try:
        if outcome.status == "failed":
            roots = (config.data_root, config.out_root, out.local)
            out.record_failure(job, failure_record(job, outcome, config.data_root, roots))
        else:
            out.clear_failure(job)
    except Exception as exc:
        log.warning("%s: failure record not updated: %s", outcome.job, exc)


def failure_record(
    job: Job, outcome: Outcome, data_root: Path, roots: tuple[Path, ...]
) -> FailureRecord:
    """What ngstate tells people about a failed job: no machine-local paths (``roots`` are
    cut from the message; the file is named relative to ``data_root``)."""
    error = outcome.error or Failure(outcome.output, "failed")
    # The job's own input may lie on a store (a URL that Path would mangle).
    failed: TreePath = job.source if error.file == str(job.source) else Path(error.file)
    message = error.message
    for root in sorted({str(r.resolve()) for r in roots}, key=len, reverse=True):
        message = message.replace(f"{root}/", "").replace(root, ".")
    return FailureRecord(
        job=outcome.job,
        file=relative_to_root(failed, data_root),
        message=message,
        line=error.line,
        failed_at=time.time(),
    )
