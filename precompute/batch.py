"""Batch precompute: every unit of work of a data tree, resumable and in parallel.

:func:`run_batch` scans the tree, checks the selection (an unknown dataset or run, or a
data root that is not a portal tree, is a usage error before anything starts), takes the
output root's locks for the datasets it writes (:mod:`precompute.locks`), lets the root
prepare (a folder: removes the ``.tmp-*`` leftovers of killed writers), and runs every job
in this process or on Dask (:mod:`precompute.execution`: small batches in process), each as
:func:`precompute.task.run_task` (placed by the output root, under a timeout, published and
its failure record updated where it runs), reporting progress as it goes
(:mod:`precompute.progress`). The driver itself reads and writes only the store or folder
of the output root, never a worker's files.

Each job decides on its worker whether its output is current (see :mod:`precompute.runner`),
so re-runs are cheap and a killed run resumes where it stopped.

``cryoet-ng precompute`` (:mod:`precompute.commands`) runs :func:`run_batch`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cryoet_ng import index
from cryoet_ng.catalogue import Catalogue
from cryoet_ng.commands import UsageError, dataset_ids, require_selection, require_tree, run_names
from cryoet_ng.config import Config
from cryoet_ng.store import StoreError, open_store
from precompute.execution import Plan, outcomes
from precompute.job_types import REGISTRY
from precompute.jobs import Job
from precompute.locks import LockTimeout
from precompute.output_roots import OutputRoot
from precompute.progress import Progress
from precompute.report import BatchReport
from precompute.runner import Outcome
from precompute.signatures import SignatureRecords
from precompute.task import failure_record

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
    jobs = REGISTRY.jobs(catalogue, out.local, plan.runs, config)
    settings = config.precompute
    in_process = plan.in_process(jobs, settings.in_process_bytes)
    describe = plan.describe(in_process)
    report = BatchReport(str(catalogue.root), out.url, describe, list(catalogue.warnings))
    with _locks(out, jobs, settings.lock_wait, settings.progress_seconds):
        # Read under the locks: a batch that waited sees what the previous one recorded.
        signatures = SignatureRecords.of(out.url, out.local)
        jobs = signatures.apply(jobs, config)
        finished: list[tuple[Job, str]] = []
        out.prepare(jobs)
        log.info("%d jobs from %s, running %s", len(jobs), catalogue.root, describe)
        with Progress(len(jobs), settings.progress_seconds) as progress:
            for job, outcome in outcomes(jobs, config, plan, in_process, out):
                if not outcome.recorded:
                    _record_failure(out, job, outcome, config)
                if outcome.status != "failed" and outcome.fingerprint is not None:
                    finished.append((job, outcome.fingerprint))
                report.add(outcome)
                progress.add(outcome.status)
                if outcome.status == "failed" and outcome.error is not None:
                    log.error("failed %s: %s", outcome.job, outcome.error)
        signatures.update(finished, config)
    report.seconds = time.perf_counter() - start
    return report


@contextlib.contextmanager
def _locks(out: OutputRoot, jobs: list[Job], wait: float | None, every: float) -> Iterator[None]:
    """The output root's locks of the datasets the jobs write into."""

    def notify(message: str) -> None:
        print(f"precompute: {message}", file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(out.locks({j.dataset_id for j in jobs}, wait, notify, every))
        except (LockTimeout, StoreError) as exc:  # held too long, or the store cannot lock
            raise UsageError(str(exc)) from exc
        yield


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


def _record_failure(out: OutputRoot, job: Job, outcome: Outcome, config: Config) -> None:
    """The failure record of a job whose worker recorded none (it was lost, none ever
    started, or the record could not be written or removed there). Never fatal: the
    outputs are right, only the stale/failed flag of the state would be."""
    if outcome.status != "failed":
        log.warning("%s: its old failure record may remain (not removed)", outcome.job)
        return
    try:
        roots = (config.data_root, config.out_root, out.local)
        out.record_failure(job, failure_record(job, outcome, config.data_root, roots))
    except Exception as exc:
        log.warning("%s: failure record not written: %s", outcome.job, exc)
