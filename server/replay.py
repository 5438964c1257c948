"""Replay of repeated answers built from a cached state, without running Flask again.

``/view``, ``/state`` and ``/explain`` answers are a function of the request URL, host and
``Origin`` and of one cached state. With the state cached the view itself costs about 20 us,
but Flask's request machinery around it costs about 45 us (``EnvironBuilder`` calls on the
2-core machine), and under gunicorn with 64 busy connections that fixed cost, plus the GIL
contention it brings, is what limits throughput and tail latency: 6,250 req/s and p99 37 ms
through Flask, against 11,540 req/s and p99 19 ms replayed (``benchmarks/serve.py``, medians
of 3 runs, README).

The views stay the only place that decides what an answer is. A view that served a cached
state calls :func:`mark` with the state-cache key and the
:class:`~server.state_service.EncodedState` it used. The middleware then keeps the status,
headers and body Flask produced, keyed by every request field that can change them (path,
query, host, scheme, mount point, ``Origin``), and serves the same bytes to the next
identical GET while the state cache still returns that very ``EncodedState`` object for the
key: a change on disk (seen as the state cache sees it) or an evicted state falls through to
Flask. Error answers are never kept, and requests with conditional or range headers always
go to Flask.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import request

from server.state_service import EncodedState, StateService, UnknownItem

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Environ keys whose values can change the answer of a view that calls mark().
KEY_FIELDS = (
    "PATH_INFO",
    "QUERY_STRING",
    "SCRIPT_NAME",
    "wsgi.url_scheme",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "HTTP_ORIGIN",
)
# Request headers Flask may answer differently to (304, 206, 412): never replayed.
BYPASS_FIELDS = (
    "HTTP_RANGE",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_MATCH",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_IF_RANGE",
)
ENVIRON_KEY = "cryoet_ng.replay"
REPLAYED_STATUSES = ("200 ", "302 ")
MAX_BODY_BYTES = 1 << 20

StateKey = tuple[str, str, "str | None", str]


@dataclass(frozen=True)
class _Answer:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    state_key: StateKey
    cached: EncodedState


def mark(state_key: StateKey, cached: EncodedState) -> None:
    """Let the middleware replay this request's answer while ``cached`` stays current."""
    slot = request.environ.get(ENVIRON_KEY)
    if slot is not None:  # None without the middleware, e.g. app.wsgi_app called directly
        slot["source"] = (state_key, cached)


class ReplayMiddleware:
    """WSGI middleware in front of the Flask app; see the module docstring."""

    def __init__(self, app: WSGIApplication, states: StateService, max_entries: int = 512):
        self.app = app
        self.states = states
        self.max_entries = max_entries
        # Plain dict: lookups need no lock under the GIL; inserts and evictions (oldest
        # first) take it.
        self._answers: dict[tuple[Any, ...], _Answer] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._answers)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or any(f in environ for f in BYPASS_FIELDS):
            return self.app(environ, start_response)
        key = tuple(environ.get(f) for f in KEY_FIELDS)
        answer = self._answers.get(key)
        if answer is not None and self._current(answer):
            start_response(answer.status, answer.headers)
            return [answer.body]
        return self._call_and_keep(key, environ, start_response)

    def _current(self, answer: _Answer) -> bool:
        try:
            return self.states.state(*answer.state_key) is answer.cached
        except UnknownItem:  # the run or tomogram went away: Flask answers 404
            return False

    def _call_and_keep(
        self, key: tuple[Any, ...], environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        seen: dict[str, Any] = {}

        def keep_start(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            seen["status"], seen["headers"] = status, headers
            return start_response(status, headers, exc_info)

        environ[ENVIRON_KEY] = seen
        body = self.app(environ, keep_start)
        source = seen.get("source")
        if source is None or not seen.get("status", "").startswith(REPLAYED_STATUSES):
            return body
        try:
            data = b"".join(body)
        finally:
            if hasattr(body, "close"):
                body.close()
        if len(data) <= MAX_BODY_BYTES:
            state_key, cached = source
            answer = _Answer(seen["status"], list(seen["headers"]), data, state_key, cached)
            with self._lock:
                self._answers.pop(key, None)
                while len(self._answers) >= self.max_entries:
                    del self._answers[next(iter(self._answers))]
                self._answers[key] = answer
        return [data]
