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

Object-store output roots (``s3://``, ``gs://``) take no lock: a bucket offers no lock
primitive here, and the staging folders are private to each batch, so one batch cannot
remove another's temporaries there; two batches on one prefix may convert the same job
twice, and while both publish the same output a reader can briefly see it incomplete.
Run one batch per object-store prefix.
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
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
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
    started = time.monotonic()
    told = -notify_every
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - started
        what = f"dataset {path.stem} of {path.parents[2]}"
        if wait is not None and waited >= wait:
            raise LockTimeout(f"{what} is being precomputed by {holder_of(path)}")
        if notify is not None and waited - told >= notify_every:
            notify(f"waiting for {what}, held by {holder_of(path)}")
            told = waited
        time.sleep(0.2 if wait is None else min(0.2, max(0.0, wait - waited)))


def _write_holder(handle: IO[str]) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv)[:300],
    }
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(info))
    handle.flush()
