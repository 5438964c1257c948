"""gunicorn's ``asgi`` worker with a deadline for a connection's first request head.

gunicorn's asyncio worker closes a kept-alive connection that stays idle for ``keepalive``
seconds after an answer, but arms no timer before the first request: a connection that
sends nothing, or drips its headers a byte at a time, stays open for ever (measured with
gunicorn 27.0.1: still open after 40 s). Such a connection holds no thread here (the event
loop owns it), but each holds a file descriptor and a place among ``worker_connections``.
This worker closes a connection whose first request head is not complete within
:data:`HEAD_SECONDS`; later heads are bounded by the keep-alive timer, as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

# Seconds a new connection may take to send its first complete request head.
HEAD_SECONDS = 10.0


class HeadTimeoutProtocol(ASGIProtocol):
    """ASGIProtocol plus a first-request head deadline (see the module docstring)."""

    _head_timer: asyncio.TimerHandle | None = None

    def _start_http1(self, buffered: bytes = b"") -> None:
        super()._start_http1(buffered)
        self._head_timer = self.worker.loop.call_later(HEAD_SECONDS, self._keepalive_timeout)

    def _cancel_keepalive_timer(self) -> None:
        # Called as soon as a request head is complete, and when the connection is lost.
        super()._cancel_keepalive_timer()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None


class ASGIWorker(gasgi.ASGIWorker):
    """``worker_class = "server.gunicorn_worker.ASGIWorker"``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # gasgi._serve builds its protocol by this module-level name; a worker process runs
        # one worker class, so the replacement concerns this worker alone.
        gasgi.ASGIProtocol = HeadTimeoutProtocol
        super().__init__(*args, **kwargs)
