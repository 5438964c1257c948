"""Output roots: where a batch's outputs go, and where each job builds its output first.

The driver discovers jobs with output paths under :attr:`OutputRoot.local` and ships each
job with its root to wherever it runs (this process or a Dask worker on another host).
There :meth:`OutputRoot.place` gives the job its :class:`Place`:

- :class:`LocalRoot`, a folder (every worker sees it at the same path): the job as it is;
  converters write in place, nothing to publish.
- :class:`StagedRoot`, an object-store prefix (``s3://bucket/prefix``, ``gs://...``): the
  job moved into a private staging folder on the machine that runs it (a temporary folder
  under that machine's ``CRYOET_NG_STAGING``, else its system temp folder). The job's
  completion records (its summary, ``info`` and failure record) are fetched there first, so
  the ordinary skip check works unchanged; a finished output is uploaded from there through
  a tensorstore kvstore, summary last (a remote summary marks a complete output exactly as
  it does locally), and the folder is removed when the job ends. The driver never reads or
  writes a staging folder (its ``local`` is a placeholder that exists nowhere), so a
  cluster needs no shared file system: each worker needs its local disk and the store.

Failure records (:mod:`cryoet_ng.failures`) are written and removed by the place where the
job ran; :meth:`OutputRoot.record_failure` is the driver's, for failures no worker saw.
The locks of the datasets a batch writes are the root's too (:mod:`precompute.locks`): a
``flock`` on a folder, a lease object on a store.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from cryoet_ng.atomic import remove_stale_temporaries
from cryoet_ng.failures import FailureRecord, write_failure
from cryoet_ng.layout import failure_path
from precompute.jobs import Job
from precompute.leases import store_locks
from precompute.locks import dataset_locks

log = logging.getLogger(__name__)

OBJECT_STORE_SCHEMES = ("s3://", "gs://")
# The driver's root of a StagedRoot's job paths: never created; each place replaces it.
STAGED = Path("/nonexistent/cryoet-ng-staged-output")

Notify = Callable[[str], None]


class StorageError(ValueError):
    """An output root cannot be used; the message names it."""


class Place(Protocol):
    """One job where it runs: the job with its local paths, and what to do when it ends."""

    job: Job
    folder: Path  # where the job's outputs are built (cut from messages)

    def publish(self) -> None:
        """Make the finished output visible under the root."""

    def record_failure(self, record: FailureRecord) -> None:
        """Put ``<output>.failed.json`` beside the job's output (its last run failed)."""

    def clear_failure(self) -> None:
        """Remove the job's failure record, if any (it succeeded or is current)."""


class OutputRoot(Protocol):
    """Picklable: shipped to the workers with every job."""

    url: str  # as given by the user, for reports
    local: Path  # the root of the jobs' output paths as the driver builds them

    def prepare(self, jobs: list[Job]) -> None:
        """On the driver, under the locks, before any job runs."""

    def place(self, job: Job, force: bool) -> AbstractContextManager[Place]:
        """Where the job runs, for the time it runs."""

    def record_failure(self, job: Job, record: FailureRecord) -> None:
        """On the driver: the failure record of a job that never finished on a worker."""

    def describe(self, job: Job) -> str:
        """The job's output as reports name it."""

    def locks(
        self, datasets: Iterable[str], wait: float | None, notify: Notify, every: float
    ) -> AbstractContextManager[None]:
        """Hold the datasets' locks (:class:`~precompute.locks.LockTimeout` after ``wait``)."""


class _LocalPlace:
    def __init__(self, job: Job, folder: Path) -> None:
        self.job = job
        self.folder = folder

    def publish(self) -> None:
        pass

    def record_failure(self, record: FailureRecord) -> None:
        write_failure(failure_path(self.job.summary), record)

    def clear_failure(self) -> None:
        failure_path(self.job.summary).unlink(missing_ok=True)


class LocalRoot:
    """A folder: converters write in place, nothing to fetch or publish."""

    def __init__(self, path: Path) -> None:
        self.local = path
        self.url = str(path)

    def prepare(self, jobs: list[Job]) -> None:
        """Remove the ``.tmp-*`` leftovers of killed writers where the jobs will write."""
        removed = sum(remove_stale_temporaries(f) for f in {j.summary.parent for j in jobs})
        if removed:
            log.info("removed %d stale temporary entries of an interrupted run", removed)

    @contextlib.contextmanager
    def place(self, job: Job, force: bool) -> Iterator[Place]:
        yield _LocalPlace(job, self.local)

    def record_failure(self, job: Job, record: FailureRecord) -> None:
        _LocalPlace(job, self.local).record_failure(record)

    def describe(self, job: Job) -> str:
        return str(job.target)

    def locks(
        self, datasets: Iterable[str], wait: float | None, notify: Notify, every: float
    ) -> AbstractContextManager[None]:
        return dataset_locks(self.local, datasets, wait, notify, every)


class StagedRoot:
    """An object-store prefix; every job is built in a private folder where it runs.

    The S3 endpoint is taken from ``AWS_ENDPOINT_URL`` when set (MinIO, moto, other
    S3-compatible stores); credentials come from tensorstore's usual AWS/GCS chain, in the
    environment of the process that publishes (each worker).
    """

    local = STAGED

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.kv  # noqa: B018  # fail on the driver, naming the root, before any job runs

    @property
    def kv(self) -> Any:
        """The root's tensorstore kvstore, opened once per process (each worker opens its
        own, with the credentials and endpoint of its environment)."""
        return _kvstore(self.url, os.environ.get("AWS_ENDPOINT_URL"))

    def key(self, path: Path, base: Path = STAGED) -> str:
        return path.relative_to(base).as_posix()

    def prepare(self, jobs: list[Job]) -> None:
        pass  # every place is new and private: no leftovers to remove

    @contextlib.contextmanager
    def place(self, job: Job, force: bool) -> Iterator[Place]:
        staging = os.environ.get("CRYOET_NG_STAGING")  # default: the system temp folder
        folder = Path(tempfile.mkdtemp(prefix="cryoet-ng-staging-", dir=staging)).resolve()
        try:
            place = _StagedPlace(self, job.relocated(self.local, folder), folder)
            place.fetch(force)
            yield place
        finally:
            # ignore_errors: a timed-out job's thread may still be writing here.
            shutil.rmtree(folder, ignore_errors=True)

    def record_failure(self, job: Job, record: FailureRecord) -> None:
        self.kv.write(self.key(failure_path(job.summary)), record.to_bytes()).result()

    def describe(self, job: Job) -> str:
        return f"{self.url}/{self.key(job.target)}"

    def locks(
        self, datasets: Iterable[str], wait: float | None, notify: Notify, every: float
    ) -> AbstractContextManager[None]:
        return store_locks(self.url, datasets, wait, notify, every)


class _StagedPlace:
    def __init__(self, root: StagedRoot, job: Job, folder: Path) -> None:
        self.root = root
        self.job = job
        self.folder = folder

    def _key(self, path: Path) -> str:
        return self.root.key(path, self.folder)

    def fetch(self, force: bool) -> None:
        """Fetch the remote summary, ``info`` file and failure record (that one even with
        ``force``: clear_failure removes what it knows of), all reads in flight at once."""
        job = self.job
        wanted = [failure_path(job.summary)]
        if not force:
            wanted.append(job.summary)
            if job.output_folder is not None:
                wanted.append(job.output_folder / "info")
        reads = [(path, self.root.kv.read(self._key(path))) for path in wanted]
        for path, future in reads:
            result = future.result()
            if result.state == "value":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(result.value)

    def publish(self) -> None:
        """Replace the remote output: marker gone first, files, then the summary last."""
        import tensorstore as ts

        job, kv = self.job, self.root.kv
        kv.write(self._key(job.summary), None).result()
        folder = job.output_folder
        if folder is not None:
            prefix = self._key(folder)
            # [prefix/, prefix0) is exactly the keys under prefix/ ("0" follows "/").
            kv.delete_range(ts.KvStore.KeyRange(prefix + "/", prefix + "0")).result()
        files = job.output_files()
        writes = [kv.write(self._key(p), p.read_bytes()) for p in files[:-1]]
        for write in writes:
            write.result()
        kv.write(self._key(job.summary), job.summary.read_bytes()).result()

    def record_failure(self, record: FailureRecord) -> None:
        path = failure_path(self.job.summary)
        self.root.kv.write(self._key(path), record.to_bytes()).result()

    def clear_failure(self) -> None:
        """Delete the remote record when one was fetched (no request otherwise)."""
        path = failure_path(self.job.summary)
        if path.exists():
            self.root.kv.write(self._key(path), None).result()
            path.unlink()


@functools.cache
def _kvstore(url: str, endpoint: str | None) -> Any:
    import tensorstore as ts

    spec = ts.KvStore.Spec(url + "/").to_json()
    if spec["driver"] == "s3" and endpoint:
        spec["endpoint"] = endpoint
    try:
        return ts.KvStore.open(spec).result()
    except ValueError as exc:
        raise StorageError(f"{url}: cannot open: {exc}") from exc


@contextlib.contextmanager
def open_output_root(out: str | None, default: Path | str) -> Iterator[OutputRoot]:
    """The output root named by ``--out`` (default: the configured root, a folder or URL)."""
    if out is None and isinstance(default, Path):
        yield LocalRoot(default.resolve())
        return
    out = out if out is not None else str(default)
    if out.startswith(OBJECT_STORE_SCHEMES):
        yield StagedRoot(out)
    else:
        yield LocalRoot(Path(out).expanduser().resolve())
