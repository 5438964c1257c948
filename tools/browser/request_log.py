"""Record every request a served app answers (path, Range header, status), thread-safely.

Chunk fetches happen in the client's web worker, which the page's Resource Timing does not
see; the server side does, so this is how a test learns which index levels or mesh fragments
the viewer read, and whether it read them by byte range (206).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType]


@dataclass(frozen=True)
class Request:
    """One answered request."""

    path: str
    range: str | None
    status: int


class RequestLog:
    """WSGI middleware appending a :class:`Request` to :attr:`entries` for every answer."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.entries: list[Request] = []
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        byte_range = environ.get("HTTP_RANGE")

        def record(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: _ExcInfo | tuple[None, None, None] | None = None,
            /,
        ) -> Callable[[bytes], object]:
            with self._lock:
                self.entries.append(Request(path, byte_range, int(status.split(" ", 1)[0])))
            return start_response(status, headers, exc_info)

        return self.app(environ, record)

    def mark(self) -> int:
        """A position to later ask for the requests made since."""
        with self._lock:
            return len(self.entries)

    def since(self, mark: int) -> list[Request]:
        with self._lock:
            return list(self.entries[mark:])
