"""Peak resident memory of this process and all its children, sampled.

``ru_maxrss`` covers one process; meshing runs in worker processes too, so the peak that
matters is the sum over the process tree, sampled every ``interval`` seconds (a peak shorter
than that can be missed; each process's own ``ru_maxrss`` bounds it from above).
"""

from __future__ import annotations

import contextlib
import resource
import threading
from types import TracebackType

import psutil


class TreePeak:
    """``with TreePeak() as peak: ...; peak.mb``: the largest sum of RSS seen, in MB, and
    ``peak.cpu_s``: CPU seconds of the whole tree (each process's own time at its last
    sample: pool workers are children of a forkserver, so ``os.times()`` misses them)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.bytes = 0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreePeak:
        times = psutil.Process().cpu_times()
        self._before = times.user + times.system  # imports etc. before the measured work
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, self_peak_bytes())

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # exited between listing and reading
                    total += process.memory_info().rss
                    times = process.cpu_times()
                    self._cpu[process.pid] = times.user + times.system
            self.bytes = max(self.bytes, total)
            self._stop.wait(self.interval)

    @property
    def cpu_s(self) -> float:
        return sum(self._cpu.values()) - self._before

    @property
    def mb(self) -> float:
        return self.bytes / 1e6


def self_peak_bytes() -> int:
    """This process's own peak RSS (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
