"""Batch precompute: every unit of work of a data tree, resumable and in parallel.

One code path for every scale: jobs run on Dask workers, on a ``LocalCluster`` with one
single-threaded worker process per core by default, or on an existing cluster when
``--scheduler tcp://host:port`` is given (its workers must see the same file system and
have this package installed). ``--workers 1`` without a scheduler runs in this process,
for debugging and profiling.

Each job decides on its worker whether its output is current (see :mod:`precompute.runner`),
so re-runs are cheap and a killed run resumes where it stopped. Before any job starts, the
``.tmp-*`` leftovers of killed writers are removed from every output folder the batch will
write into; only one batch may write to an output root at a time.

``cryoet-ng precompute`` (:mod:`precompute.commands`) runs :func:`run_batch`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from cryoet_ng import index
from cryoet_ng.atomic import remove_stale_temporaries
from cryoet_ng.catalogue import Catalogue
from cryoet_ng.config import Config
from cryoet_ng.store import open_store
from precompute.errors import Failure
from precompute.job_types import REGISTRY
from precompute.jobs import Job
from precompute.output_roots import OutputRoot
from precompute.report import BatchReport
from precompute.runner import Outcome, execute
from precompute.signatures import SignatureRecords

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What to run and how: the selection, where jobs go, whether finished work is redone."""

    workers: int
    scheduler: str | None = None
    force: bool = False
    datasets: tuple[str, ...] = ()  # empty: all
    runs: tuple[str, ...] = ()

    @property
    def in_process(self) -> bool:
        return self.scheduler is None and self.workers <= 1

    def describe(self) -> str:
        if self.scheduler is not None:
            return f"dask scheduler {self.scheduler}"
        if self.in_process:
            return "in-process"
        return f"dask local cluster ({self.workers} workers)"


def run_batch(data_root: str | Path, out: OutputRoot, config: Config, plan: Plan) -> BatchReport:
    """Refresh the tree's index, clean leftovers, run every job and collect the outcomes."""
    start = time.perf_counter()
    catalogue = _catalogue(data_root, out.url, list(plan.datasets) or None, list(plan.runs) or None)
    signatures = SignatureRecords.of(out.url, out.local)
    jobs = signatures.apply(REGISTRY.jobs(catalogue, out.local, plan.runs), config)
    finished: list[Job] = []
    report = BatchReport(str(catalogue.root), out.url, plan.describe(), list(catalogue.warnings))
    out.prepare(jobs, force=plan.force)
    removed = sum(remove_stale_temporaries(f) for f in {j.summary.parent for j in jobs})
    if removed:
        log.info("removed %d stale temporary entries of an interrupted run", removed)
    log.info("%d jobs from %s, running %s", len(jobs), catalogue.root, plan.describe())
    with _progress(len(jobs)) as bar:
        for job, outcome in _outcomes(jobs, config, plan):
            if outcome.status == "done":
                outcome = _publish(out, job, outcome)
            if outcome.status != "failed":
                finished.append(job)
            report.add(outcome)
            if outcome.status == "failed" and outcome.error is not None:
                log.error("failed %s: %s", outcome.job, outcome.error)
            counts = report.counts
            bar.set_postfix(
                done=counts["done"],
                skipped=counts["skipped"],
                failed=counts["failed"],
                refresh=False,
            )
            bar.update()
    signatures.update(finished, config)
    report.seconds = time.perf_counter() - start
    return report


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


def _worker_environ() -> dict[str, object]:
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


@contextlib.contextmanager
def _progress(total: int) -> Iterator[tqdm]:
    """A tqdm bar on an interactive terminal; silent under CI or when stderr is a file."""
    disable = not sys.stderr.isatty() or bool(os.environ.get("CI"))
    with logging_redirect_tqdm(), tqdm(total=total, unit="job", disable=disable) as bar:
        yield bar


def _outcomes(jobs: list[Job], config: Config, plan: Plan) -> Iterator[tuple[Job, Outcome]]:
    """Outcomes in completion order, from this process or from Dask workers."""
    if plan.in_process:
        for job in jobs:
            yield job, execute(job, config, plan.force)
        return
    # Imported here: distributed takes ~1 s to import and the in-process path needs none of it.
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    if not log.isEnabledFor(logging.DEBUG):
        # Cluster start/stop chatter buries the failures; -v brings it back.
        logging.getLogger("distributed").setLevel(logging.WARNING)
    settings = {
        # A job that kills its worker (segfault, out of memory) is retried once, then reported.
        "distributed.scheduler.allowed-failures": 1,
        # Workers keep glibc's adaptive malloc: Dask's MALLOC_TRIM_THRESHOLD_ fixes the mmap
        # threshold, so every large numpy temporary is mmapped and page-faulted afresh
        # (demo tree, 2 workers: 12.8 s of system CPU with it, 4.2 s without).
        "distributed.nanny.pre-spawn-environ": _worker_environ(),
    }
    with dask.config.set(settings), contextlib.ExitStack() as stack:
        if plan.scheduler is not None:
            client = stack.enter_context(Client(plan.scheduler))
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=plan.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(Client(cluster))
        batch_id = uuid.uuid4().hex[:8]  # keys stay unique on a shared scheduler
        futures = {
            client.submit(
                execute,
                job,
                config,
                plan.force,
                key=f"precompute-{batch_id}-{i}",
                # Longest-first: each job type's priority (masks, then tomograms, then
                # points), so that a short job, not a long one, is the last to run.
                priority=job.priority,
            ): job
            for i, job in enumerate(jobs)
        }
        for future in as_completed(futures):
            job = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # the worker died or the scheduler lost the task
                error = Failure(str(job.source), f"worker lost: {exc}")
                outcome = Outcome(job.name, "failed", 0.0, str(job.target), error)
            yield job, outcome
            future.release()
