"""Dataset locks on an object-store output root: lease objects (see :mod:`precompute.locks`).

``<prefix>/cryoet-ng-index/locks/<dataset>.lock`` holds the holder (pid, host, start,
command), a random token and ``expires`` (POSIX seconds). Every change is a conditional
PUT, so two batches never both believe they hold one dataset:

- take: create only if absent (``If-None-Match: *``); or, when the lease found there has
  expired, replace only that version (``If-Match: <its ETag>``);
- renew: every :data:`RENEW_SECONDS` in a thread, replace only our own version; a renewal
  that finds another version means the lease was taken over (this batch stalled for longer
  than the lease): logged as an error, the batch goes on (its outputs are still complete
  and atomic per object; only their order against the other batch is lost);
- release: delete, when the version there is still ours.

A killed batch leaves its lease until it expires, :data:`LEASE_SECONDS` after the last
renewal; a batch that finds it waits (``precompute.lock_wait``) and takes it over then.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

from cryoet_ng.store import Changed, NotFound, TreeStore, open_store
from precompute.locks import LOCK_FOLDER, describe_holder, holder_info, wait_for

log = logging.getLogger(__name__)

# Long enough for clocks that disagree and a renewal that is retried for a minute (the
# store's retry budget); short enough that a killed batch holds a dataset for minutes.
LEASE_SECONDS = 300.0
RENEW_SECONDS = 60.0


class Lease:
    """One dataset's lease object under a store root."""

    def __init__(self, store: TreeStore, dataset: str, seconds: float = LEASE_SECONDS) -> None:
        self.store = store
        self.key = f"{LOCK_FOLDER}/{dataset}.lock"
        self.what = f"dataset {dataset} of {store.url}"
        self.seconds = seconds
        self.token = uuid.uuid4().hex
        self.version: str | None = None  # our lease's ETag while we hold it
        self.holder = "another batch"  # as last read, for messages

    def _body(self) -> bytes:
        info = holder_info() | {"token": self.token, "expires": time.time() + self.seconds}
        return json.dumps(info).encode()

    def try_take(self) -> bool:
        """Create the lease, or take over an expired one; False while another holds it."""
        self.version = self.store.write_if(self.key, self._body(), None)
        if self.version is not None:
            return True
        entry = self.store.head(self.key)
        if entry is None:
            return False  # released since: the next attempt creates it
        try:
            info = json.loads(self.store.read(self.key, entry.version))
        except (Changed, NotFound):
            return False  # renewed or released meanwhile
        except ValueError:
            info = {}  # not a lease we wrote: it never expires by itself
        self.holder = describe_holder(info)
        expires = info.get("expires") if isinstance(info, dict) else None
        if not isinstance(expires, int | float) or expires > time.time():
            return False
        self.version = self.store.write_if(self.key, self._body(), entry.version)
        if self.version is not None:
            log.warning("%s: took over the expired lease of %s", self.what, self.holder)
        return self.version is not None

    def renew(self) -> None:
        if self.version is None:
            return
        version = self.store.write_if(self.key, self._body(), self.version)
        if version is None:
            log.error("%s: lease lost (taken over after it expired); going on", self.what)
        self.version = version

    def release(self) -> None:
        if self.version is None:
            return
        entry = self.store.head(self.key)
        if entry is not None and entry.version == self.version:
            self.store.delete(self.key)
        self.version = None


@contextlib.contextmanager
def store_locks(
    url: str,
    datasets: Iterable[str],
    wait: float | None = None,
    notify: Callable[[str], None] | None = None,
    notify_every: float = 30.0,
    renew_every: float = RENEW_SECONDS,
) -> Iterator[None]:
    """Hold the leases of ``datasets`` under the store root ``url`` for the block (in
    sorted order: two batches never deadlock); :class:`~precompute.locks.LockTimeout` as
    :func:`~precompute.locks.dataset_locks`."""
    store = open_store(url)
    leases: list[Lease] = []
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew_until, args=(leases, stop, renew_every), name="lease renewal", daemon=True
    )
    try:
        for dataset in sorted(set(datasets)):
            lease = Lease(store, dataset)
            leases.append(lease)  # before taking it: released even if the wait is cut short
            holder = lambda lease=lease: lease.holder  # noqa: E731
            wait_for(lease.try_take, lease.what, holder, wait, notify, notify_every)
        renewer.start()
        yield
    finally:
        stop.set()
        if renewer.is_alive():
            renewer.join()
        for lease in reversed(leases):
            try:
                lease.release()
            except OSError as exc:  # expires by itself
                log.warning("%s: lease not released: %s", lease.what, exc)


def _renew_until(leases: list[Lease], stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        for lease in leases:
            try:
                lease.renew()
            except OSError as exc:  # the store is unreachable: the next renewal may do
                log.warning("%s: lease not renewed: %s", lease.what, exc)
