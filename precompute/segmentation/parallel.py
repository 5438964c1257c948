"""Run independent pieces of one converter's work on every core, wherever it runs.

zmesh holds the GIL while it meshes (measured: a pure-Python thread makes no progress during
``Mesher.mesh``/``get``), so threads cannot spread meshing over cores. Processes can, but a
Dask worker is a daemonic process and may not start children. Hence three ways, chosen here:

* inside a Dask worker: tasks on the cluster (workers on the same host, which see the same
  staging folder), while this task secedes from the worker's thread pool;
* in any other (non-daemonic) process: a process pool of ``workers`` processes (forkserver:
  tensorstore's threads make plain fork unsafe);
* otherwise, or when there is only one task or one worker: in this thread, in order.

Results come back in completion order; callers sort what needs an order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

T = TypeVar("T")

MESH_PRIORITY = 10  # above every batch job's priority: a seceded converter's tasks go first


def worker_count(requested: int) -> int:
    """``requested`` processes, or every core when 0."""
    return requested if requested > 0 else (os.cpu_count() or 1)


def run_all(
    fn: Callable[..., T], items: Sequence[tuple[Any, ...]], workers: int, pool: bool = True
) -> Iterator[T]:
    """``fn(*item)`` for every item, in completion order.

    ``pool=False`` keeps everything in this thread (small inputs: a process pool costs about
    a second to start); a Dask cluster is used whenever there is one, since its workers are
    already running.
    """
    if len(items) > 1 and workers > 1:
        client = _dask_client()
        if client is not None:
            yield from _on_dask(client, fn, items)
            return
        if pool and not multiprocessing.current_process().daemon:
            yield from _on_processes(fn, items, workers)
            return
    for item in items:
        yield fn(*item)


def _on_processes(
    fn: Callable[..., T], items: Sequence[tuple[Any, ...]], workers: int
) -> Iterator[T]:
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=context) as executor:
        futures = [executor.submit(fn, *item) for item in items]
        for future in as_completed(futures):
            yield future.result()


def _dask_client() -> Any:
    """The Dask client of the worker running this code, or None outside a Dask worker."""
    try:
        from distributed import get_client, get_worker
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        get_worker()
    except ValueError:
        return None
    return get_client()


def _on_dask(client: Any, fn: Callable[..., T], items: Sequence[tuple[Any, ...]]) -> Iterator[T]:
    from distributed import as_completed as dask_completed
    from distributed import get_worker, rejoin, secede

    host = _host(get_worker().address)
    workers = [a for a in client.scheduler_info()["workers"] if _host(a) == host]
    futures = [
        client.submit(fn, *item, pure=False, workers=workers, priority=MESH_PRIORITY)
        for item in items
    ]
    secede()  # this worker's thread runs block tasks too while we wait
    try:
        for future in dask_completed(futures):
            result = future.result()
            future.release()
            yield result
    finally:
        for future in futures:
            future.cancel()
        rejoin()


def _host(address: str) -> str:
    """Host part of a Dask address such as ``tcp://10.0.0.1:4567``."""
    return address.split("://", 1)[-1].rsplit(":", 1)[0]
