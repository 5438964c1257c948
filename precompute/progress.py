"""Progress of a batch an operator can watch: a tqdm bar on a terminal, lines otherwise.

Under cron, CI or a cluster job stderr is a file, where a bar prints nothing useful (tqdm
rewrites one line with carriage returns), and a long batch printed nothing between its
start line and its final table. There a line goes to stderr every ``interval`` seconds,
from a timer thread, so it comes at a steady pace even while one long job runs::

    precompute: 40/180 jobs (done 30, skipped 8, failed 2), 1.3 jobs/s, elapsed 31s, ETA 1m48s
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from typing import Any, TextIO

from tqdm import tqdm

STATUSES = ("done", "skipped", "failed")


def on_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (not under CI, not a file or pipe)."""
    return stream.isatty() and not os.environ.get("CI")


def duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3725`` -> ``1h02m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts of finished jobs, shown as a bar (terminal) or as periodic lines (otherwise).

    Use as a context manager; :meth:`add` one status per finished job.
    """

    def __init__(
        self, total: int, interval: float = 30.0, stream: TextIO | None = None, label: str = ""
    ) -> None:
        self.total = total
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self.label = label or "precompute"
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar: tqdm[Any] | None = None
        self._timer: threading.Thread | None = None

    def __enter__(self) -> Progress:
        self.started = time.monotonic()
        if on_terminal(self.stream):
            self._bar = tqdm(total=self.total, unit="job", file=self.stream)
        elif self.interval > 0 and self.total > 0:
            self._timer = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        if self._bar is not None:
            self._bar.close()

    def add(self, status: str) -> None:
        with self._lock:
            self.counts[status] += 1
        if self._bar is not None:
            counts = self.counts
            self._bar.set_postfix({s: counts[s] for s in STATUSES}, refresh=False)
            self._bar.update()

    def line(self) -> str:
        """The progress line for now."""
        with self._lock:
            counts = dict(self.counts)
        finished = sum(counts.values())
        elapsed = time.monotonic() - self.started
        rate = finished / elapsed if elapsed > 0 else 0.0
        parts = ", ".join(f"{s} {counts.get(s, 0)}" for s in STATUSES)
        left = self.total - finished
        eta = duration(left / rate) if rate > 0 else "unknown"
        return (
            f"{self.label}: {finished}/{self.total} jobs ({parts}), {rate:.2g} jobs/s, "
            f"elapsed {duration(elapsed)}, ETA {eta}"
        )

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            print(self.line(), file=self.stream, flush=True)
