"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes started
here, each worker in a private folder (its working directory, ``TMPDIR`` and
``CRYOET_NG_STAGING``), as on hosts that share no file system; all stopped at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cluster:
    address: str
    worker_homes: list[Path]  # each worker's private folder

    def staging(self, worker: int) -> Path:
        return self.worker_homes[worker] / "staging"


def _start(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # A session of its own: the nanny's worker process is stopped with it.
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the process and its children (its session's group: a nanny and its worker).
    Nothing of theirs needs a graceful end, which takes Dask seconds per worker."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextmanager
def dask_cluster(folder: Path, workers: int, env: dict[str, str]) -> Iterator[Cluster]:
    """A scheduler on loopback and ``workers`` single-threaded workers with ``env`` (on top
    of this process's environment) and private folders under ``folder``."""
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    base = dict(os.environ) | env
    try:
        scheduler_file = folder / "scheduler.json"
        argv = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
        argv += ["--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)]
        processes.append(_start(argv, folder, base, folder / "scheduler.log"))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            if processes[0].poll() is not None:
                raise RuntimeError((folder / "scheduler.log").read_text())
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        homes = []
        for i in range(workers):
            home = folder / f"worker-{i}"
            for name in ("staging", "tmp", "dask"):
                (home / name).mkdir(parents=True)
            private = {"CRYOET_NG_STAGING": str(home / "staging"), "TMPDIR": str(home / "tmp")}
            argv = [sys.executable, "-m", "distributed.cli.dask_worker", address]
            argv += ["--nthreads", "1", "--no-dashboard", "--local-directory", str(home / "dask")]
            processes.append(_start(argv, home, base | private, home / "worker.log"))
            homes.append(home)
        with Client(address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)
        yield Cluster(address, homes)
    finally:
        for process in reversed(processes):
            _stop(process)
