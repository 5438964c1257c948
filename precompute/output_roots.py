"""Output roots: a local folder, or an object store reached through a local staging folder.

Converters write to local paths (atomic renames need a file system), so an object-store
root (``s3://bucket/prefix``, ``gs://bucket/prefix``) is served by :class:`StagedRoot`:
``prepare`` fetches the small completion records (summaries and ``info`` files) of the
outputs into a staging folder, so the ordinary skip check works unchanged; ``publish``
uploads a finished output through a tensorstore kvstore, summary last, so a remote
summary still marks a complete output exactly as it does locally. Failure records
(:mod:`cryoet_ng.failures`) are written and removed under the root the same way.

The staging folder is a temporary folder (under ``CRYOET_NG_STAGING`` when set); with
``--scheduler`` it must be on a file system the Dask workers share.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from cryoet_ng.failures import FailureRecord, write_failure
from cryoet_ng.layout import failure_path
from precompute.jobs import Job

OBJECT_STORE_SCHEMES = ("s3://", "gs://")


class StorageError(ValueError):
    """An output root cannot be used; the message names it."""


class OutputRoot(Protocol):
    url: str  # as given by the user, for reports
    local: Path  # where converters write

    def prepare(self, jobs: list[Job], force: bool) -> None:
        """Make the skip check see what the root already holds."""

    def publish(self, job: Job) -> None:
        """Make a finished job's output visible under the root."""

    def record_failure(self, job: Job, record: FailureRecord) -> None:
        """Put ``<output>.failed.json`` beside the job's output (its last run failed)."""

    def clear_failure(self, job: Job) -> None:
        """Remove the job's failure record, if any (it succeeded or is current)."""


class LocalRoot:
    """A folder: converters write in place, nothing to fetch or publish."""

    def __init__(self, path: Path) -> None:
        self.local = path
        self.url = str(path)

    def prepare(self, jobs: list[Job], force: bool) -> None:
        pass

    def publish(self, job: Job) -> None:
        pass

    def record_failure(self, job: Job, record: FailureRecord) -> None:
        write_failure(failure_path(job.summary), record)

    def clear_failure(self, job: Job) -> None:
        failure_path(job.summary).unlink(missing_ok=True)


class StagedRoot:
    """An object-store prefix, written through a local staging folder.

    The S3 endpoint is taken from ``AWS_ENDPOINT_URL`` when set (MinIO, moto, other
    S3-compatible stores); credentials come from tensorstore's usual AWS/GCS chain.
    """

    def __init__(self, url: str, staging: Path) -> None:
        import tensorstore as ts

        self.url = url
        self.local = staging
        spec = ts.KvStore.Spec(url.rstrip("/") + "/").to_json()
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if spec["driver"] == "s3" and endpoint:
            spec["endpoint"] = endpoint
        try:
            self._kv = ts.KvStore.open(spec).result()
        except ValueError as exc:
            raise StorageError(f"{url}: cannot open: {exc}") from exc

    def _key(self, path: Path) -> str:
        return path.relative_to(self.local).as_posix()

    def prepare(self, jobs: list[Job], force: bool) -> None:
        """Fetch the remote summaries, ``info`` files and failure records (those even with
        ``force``: clear_failure removes what it knows of), all reads in flight at once."""
        wanted = [failure_path(j.summary) for j in jobs]
        if not force:
            wanted += [j.summary for j in jobs]
            wanted += [j.output_folder / "info" for j in jobs if j.output_folder is not None]
        reads = [(path, self._kv.read(self._key(path))) for path in wanted]
        for path, future in reads:
            result = future.result()
            if result.state == "value":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(result.value)

    def publish(self, job: Job) -> None:
        """Replace the remote output: marker gone first, files, then the summary last."""
        import tensorstore as ts

        self._kv.write(self._key(job.summary), None).result()
        folder = job.output_folder
        if folder is not None:
            prefix = self._key(folder)
            # [prefix/, prefix0) is exactly the keys under prefix/ ("0" follows "/").
            self._kv.delete_range(ts.KvStore.KeyRange(prefix + "/", prefix + "0")).result()
        files = job.output_files()
        writes = [self._kv.write(self._key(p), p.read_bytes()) for p in files[:-1]]
        for write in writes:
            write.result()
        self._kv.write(self._key(job.summary), job.summary.read_bytes()).result()
        if folder is not None:
            shutil.rmtree(folder)  # keep the staging folder small on big trees

    def record_failure(self, job: Job, record: FailureRecord) -> None:
        path = failure_path(job.summary)
        self._kv.write(self._key(path), record.to_bytes()).result()
        write_failure(path, record)  # the staging copy: clear_failure knows it exists

    def clear_failure(self, job: Job) -> None:
        """Delete the remote record when one was fetched or written (no request otherwise)."""
        path = failure_path(job.summary)
        if path.exists():
            self._kv.write(self._key(path), None).result()
            path.unlink()


@contextlib.contextmanager
def open_output_root(out: str | None, default: Path) -> Iterator[OutputRoot]:
    """The output root named by ``--out`` (default: the configured root)."""
    if out is None:
        yield LocalRoot(default.resolve())
    elif out.startswith(OBJECT_STORE_SCHEMES):
        staging = os.environ.get("CRYOET_NG_STAGING")  # default: the system temp folder
        with tempfile.TemporaryDirectory(prefix="cryoet-ng-staging-", dir=staging) as tmp:
            yield StagedRoot(out, Path(tmp))
    else:
        yield LocalRoot(Path(out).expanduser().resolve())
