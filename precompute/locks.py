"""One batch at a time per dataset of a local output root.

Before this lock, a second batch started on the same output root removed the first one's
work in progress (its clean-up of stale ``.tmp-*`` temporaries cannot tell a killed
writer's leftovers from a live one's), and the first failed with exit status 1.

A batch takes an exclusive ``flock`` on ``<out_root>/cryoet-ng-index/locks/<dataset>.lock``
(beside the tree index and the input signatures: bookkeeping, not outputs)
for every dataset it will write into, in sorted order (so two batches never deadlock),
*before* removing temporaries or starting any job, and holds them until it ends. The
kernel releases the locks of a process that dies, so a killed batch leaves none behind;
the file keeps the holder's pid, host, start time and command for messages.

A second batch whose datasets overlap **waits** for the holder (saying so on stderr with
the holder named, every ``progress`` interval), then runs: the outputs the first one
finished are current and skipped, so it only redoes what the first left undone or failed,
and its own exit status reports its own work. Waiting was chosen over skipping the jobs
held by the other (the second batch's exit status would then depend on jobs it never saw
finish) and over exiting at once (a cron job started while the previous run is still
going would report an error for a tree that ends up complete). ``lock_wait`` bounds the
wait: 0 refuses at once, and a batch that cannot get its locks in time exits with status
2 naming the holder. Batches on disjoint datasets run side by side.

An object-store output root (``s3://``, ``gs://``) has no ``flock``: a batch holds a
**lease object** per dataset, ``<prefix>/cryoet-ng-index/locks/<dataset>.lock`` (holder and
``expires``, POSIX seconds), created with a conditional PUT (S3 ``If-None-Match: *``) that
only one batch can win. The holder renews it every :data:`RENEW_SECONDS` (a conditional PUT
on its own ETag) and deletes it at the end. A killed batch's lease is not renewed: once it
has expired (:data:`LEASE_SECONDS` after the last renewal) the next batch takes it over,
again conditionally (``If-Match`` on the expired lease's ETag), so of two batches waiting
for one expired lease only one gets it. Expiry is compared with the waiting machine's
clock: clocks may disagree by much less than the lease. The lease guards the outputs under
the prefix wherever the jobs run (on workers that share nothing); a store without
conditional writes cannot be locked and the batch refuses it (exit 2).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from cryoet_ng.index import FOLDER

LOCK_FOLDER = f"{FOLDER}/locks"


class LockTimeout(RuntimeError):
    """Another batch holds a dataset this one needs, longer than allowed; names the holder."""


def holder_of(path: Path) -> str:
    """Who holds (or last held) the lock file at ``path``, as written by its holder."""
    try:
        return describe_holder(json.loads(path.read_text()))
    except (OSError, ValueError):
        return "another batch"


def describe_holder(info: object) -> str:
    try:
        assert isinstance(info, dict)
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (AssertionError, KeyError, TypeError):
        return "another batch"


@contextlib.contextmanager
def dataset_locks(
    out_root: Path,
    datasets: Iterable[str],
    wait: float | None = None,
    notify: Callable[[str], None] | None = None,
    notify_every: float = 30.0,
) -> Iterator[None]:
    """Hold the locks of ``datasets`` under ``out_root`` for the block.

    ``wait``: seconds to wait for a lock held by another batch (None: as long as it takes,
    0: not at all); :class:`LockTimeout` when it runs out. ``notify`` is told, at once and
    every ``notify_every`` seconds, whom the batch is waiting for.
    """
    folder = out_root / LOCK_FOLDER
    with contextlib.ExitStack() as stack:
        for dataset in sorted(set(datasets)):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{dataset}.lock"
            handle = stack.enter_context(path.open("a+"))
            _acquire(handle, path, wait, notify, notify_every)
            stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)
            _write_holder(handle)
        yield


def _acquire(
    handle: IO[str],
    path: Path,
    wait: float | None,
    notify: Callable[[str], None] | None,
    notify_every: float,
) -> None:
    def attempt() -> bool:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    what = f"dataset {path.stem} of {path.parents[2]}"
    wait_for(attempt, what, lambda: holder_of(path), wait, notify, notify_every)


def wait_for(
    attempt: Callable[[], bool],
    what: str,
    holder: Callable[[], str],
    wait: float | None,
    notify: Callable[[str], None] | None,
    notify_every: float,
    poll: float = 0.2,
) -> None:
    """Call ``attempt`` until it takes the lock; :class:`LockTimeout` after ``wait``
    seconds, ``notify`` told whom we wait for at once and every ``notify_every`` seconds."""
    started = time.monotonic()
    told = -notify_every
    while not attempt():
        waited = time.monotonic() - started
        if wait is not None and waited >= wait:
            raise LockTimeout(f"{what} is being precomputed by {holder()}")
        if notify is not None and waited - told >= notify_every:
            notify(f"waiting for {what}, held by {holder()}")
            told = waited
        time.sleep(poll if wait is None else min(poll, max(0.0, wait - waited)))


def holder_info() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv)[:300],
    }


def _write_holder(handle: IO[str]) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(holder_info()))
    handle.flush()
