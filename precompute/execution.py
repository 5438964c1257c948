"""Where a batch's jobs run, and the bounds every job runs within.

- **In this process** when there is one worker, or when the batch is small: its inputs
  total at most ``precompute.in_process_bytes``. A Dask ``LocalCluster`` costs seconds
  before the first job (start-up, and each worker importing the converters) and about a
  second to stop: 4.0 s start + 1.9 s first task and imports + 1.8 s close on the idle
  2-core machine (``python -m benchmarks.batch`` prints the figure of the run), while a
  second worker at best halves the conversion time. In-process conversion runs at about
  27 MB of input per second (demo tree: 721 MB in 26.3 s), so below about 2 x 7.7 s x
  27 MB/s ~ 400 MB the cluster cannot pay for itself; the default, 256 MB, leaves room
  for a busier machine.
- **On Dask** otherwise: a ``LocalCluster`` (one single-threaded worker process per core,
  no dashboard unless ``dashboard`` names an address; the scheduler's HTTP endpoint on a
  free port, so a busy 8787 prints nothing) or an existing scheduler.

Every job runs in a thread under a deadline (``precompute.job_timeout``): a job still
running then is reported failed ("timed out") and the batch goes on. A thread cannot be
killed: on Dask the worker that ran it is restarted (its nanny starts a fresh process) as
soon as it runs none of the batch's jobs and holds none of its results (a restart loses
both and Dask would redo them), else when the batch ends; in this process the thread is
abandoned (a daemon, gone when the batch ends). On an
existing scheduler, jobs still waiting when no worker has been connected for
``precompute.start_timeout`` seconds fail as "cannot start".
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryoet_ng.config import Config
from cryoet_ng.store import Location, TreePath
from precompute.errors import Failure
from precompute.jobs import Job
from precompute.output_roots import LocalRoot, OutputRoot
from precompute.runner import Outcome
from precompute.task import run_task

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Plan:
    """What to run and how: the selection, where jobs go, whether finished work is redone."""

    workers: int
    scheduler: str | None = None
    force: bool = False
    datasets: tuple[str, ...] = ()  # empty: all
    runs: tuple[str, ...] = ()
    dashboard: str | None = None  # a LocalCluster's dashboard address; None: no dashboard

    def in_process(self, jobs: list[Job], limit_bytes: int) -> bool:
        """Run in this process: one worker, or a small batch without a scheduler."""
        if self.scheduler is not None:
            return False
        return self.workers <= 1 or len(jobs) <= 1 or input_bytes(jobs, limit_bytes) <= limit_bytes

    def describe(self, in_process: bool) -> str:
        if self.scheduler is not None:
            return f"dask scheduler {self.scheduler}"
        if in_process:
            return "in-process"
        return f"dask local cluster ({self.workers} workers)"


def input_bytes(jobs: Iterable[Job], limit: int) -> int:
    """Total size of the jobs' inputs, counted until it exceeds ``limit`` (then more)."""
    total = 0
    for job in jobs:
        for source in job.sources():
            total += _size(source, limit - total)
            if total > limit:
                return total
    return total


def _size(path: TreePath, limit: int) -> int:
    if isinstance(path, Location):
        # Remote inputs are not sized (a request each) and are slow to read: on Dask.
        return limit + 1
    try:
        if not path.is_dir():
            return path.stat().st_size if path.exists() else 0
        total = 0
        for folder, _dirs, files in os.walk(path):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(folder, name)).st_size
            if total > limit:
                break
        return total
    except OSError:
        return 0


def outcomes(
    jobs: list[Job],
    config: Config,
    plan: Plan,
    in_process: bool,
    root: OutputRoot | None = None,
) -> Iterator[tuple[Job, Outcome]]:
    """Outcomes in completion order, from this process or from Dask workers; every job
    runs as :func:`~precompute.task.run_task` with ``root`` (default: the configured
    output folder)."""
    root = root if root is not None else LocalRoot(Path(config.out_root))
    if in_process:
        for job in jobs:
            yield job, run_task(job, root, config, plan.force)
        return
    if jobs:
        yield from _dask_outcomes(jobs, config, plan, root)


def _worker_environ() -> dict[str, object]:
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


@contextlib.contextmanager
def _client(plan: Plan) -> Iterator[Client]:
    # Imported here: distributed takes ~1 s to import and the in-process path needs none of it.
    from dask.distributed import Client, LocalCluster

    if plan.scheduler is not None:
        with Client(plan.scheduler) as client:
            yield client
        return
    # The scheduler always serves HTTP (health, metrics; the dashboard on top when asked):
    # on a free port unless a dashboard address is given, so a busy 8787 says nothing.
    http = {} if plan.dashboard else {"dashboard_address": "127.0.0.1:0"}
    with (
        LocalCluster(
            n_workers=plan.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=plan.dashboard,
            scheduler_kwargs=http,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        if plan.dashboard:
            log.info("Dask dashboard: %s", cluster.dashboard_link)
        yield client
        # Workers busy with an abandoned job are killed at close: expected, not news.
        logging.getLogger("distributed.nanny").setLevel(logging.ERROR)


def _dask_outcomes(
    jobs: list[Job], config: Config, plan: Plan, root: OutputRoot
) -> Iterator[tuple[Job, Outcome]]:
    import dask
    from dask.distributed import wait

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
    with dask.config.set(settings), _client(plan) as client:
        batch_id = uuid.uuid4().hex[:8]  # keys stay unique on a shared scheduler
        pending: dict[Future, Job] = {
            client.submit(
                run_task,
                job,
                root,
                config,
                plan.force,
                key=f"precompute-{batch_id}-{i}",
                # Longest-first: each job type's priority (masks, then tomograms, then
                # points), so that a short job, not a long one, is the last to run.
                priority=job.priority,
                pure=False,
            ): job
            for i, job in enumerate(jobs)
        }
        no_worker_since: float | None = None
        stuck: set[str] = set()  # workers still running a timed-out job's thread
        while pending:
            try:
                finished = wait(list(pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")[
                    0
                ]
            except TimeoutError:  # nothing finished in POLL_SECONDS
                finished = set()
            for future in finished:
                job = pending.pop(future)
                outcome = _result(future, job)
                if outcome.timed_out:
                    stuck |= _holders(client, future)
                future.release()
                yield job, outcome
            if stuck:
                stuck = _restart_idle(client, stuck, {str(f.key) for f in pending})
            if finished:
                no_worker_since = None
                continue
            if _worker_count(client) > 0:
                no_worker_since = None
            elif no_worker_since is None:
                no_worker_since = time.monotonic()
            elif time.monotonic() - no_worker_since > config.precompute.start_timeout:
                for future, job in pending.items():
                    future.cancel()
                    message = (
                        f"cannot start: no Dask worker connected for "
                        f"{config.precompute.start_timeout:g} s (precompute.start_timeout)"
                    )
                    error = Failure(str(job.source), message)
                    yield job, Outcome(job.name, "failed", 0.0, str(job.target), error)
                return
        if stuck and plan.scheduler is not None:  # a LocalCluster's workers end with it
            _restart(client, stuck)


def _result(future: Future, job: Job) -> Outcome:
    try:
        outcome: Outcome = future.result()
    except Exception as exc:  # the worker died twice, the job could not be unpickled...
        error = Failure(str(job.source), f"worker lost: {type(exc).__name__}: {exc}")
        return Outcome(job.name, "failed", 0.0, str(job.target), error)
    return outcome


def _worker_count(client: Client) -> int:
    try:
        info: dict[str, Any] = client.scheduler_info()
    except Exception:  # the scheduler is unreachable: as good as no worker
        return 0
    return len(info.get("workers", {}))


def _holders(client: Client, future: Future) -> set[str]:
    """The worker that ran ``future`` (it holds the result)."""
    try:
        return {w for holders in client.who_has([future]).values() for w in holders}
    except Exception:  # the scheduler lost it already: nothing to restart
        return set()


def _restart_idle(client: Client, stuck: set[str], pending: set[str]) -> set[str]:
    """Restart the stuck workers that run none of our jobs and hold none of our results (a
    restart loses both, and Dask would run those jobs again); return the others, tried
    again later. A worker never idle keeps its abandoned thread until the batch ends."""
    try:
        processing = client.processing(sorted(stuck))
        holding = client.has_what(sorted(stuck))
    except Exception:  # the scheduler is busy or gone: try again later
        return stuck
    idle = {w for w in stuck if not processing.get(w) and not set(holding.get(w, ())) & pending}
    if idle:
        _restart(client, idle)
    return stuck - idle


def _restart(client: Client, workers: set[str]) -> None:
    """Restart workers still running a timed-out job's thread (each needs a nanny)."""
    try:
        client.restart_workers(sorted(workers), raise_for_error=False)
    except Exception as exc:  # no nanny (a bare `dask worker --no-nanny`): it keeps running
        log.warning("could not restart the worker of a timed-out job: %s", exc)
