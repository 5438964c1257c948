"""The production front: an asyncio ASGI app in front of the Flask (WSGI) app.

``gunicorn -c python:server.gunicorn_conf server.asgi:app`` (gunicorn's ``asgi`` worker;
:mod:`server.asgi` is the entry point).

Why: under threaded workers (``gthread``, 2 x 16 threads) a thread belongs to a connection
while it reads the request and writes the answer, so 64 connections dripping their headers
or holding ``/events`` streams took all 32 threads and ``/healthz`` got no answer in 30 s
(issue 16, ``tests/test_server_slow_clients.py``). Here the event loop owns every
connection; a thread of the bounded WSGI pool is taken only for work:

- the request head is parsed by the server's event loop, and the body is read here into
  memory (at most ``server.max_body_bytes`` + 1 bytes: Flask answers 413 beyond, without
  reading the rest) before any thread is involved; a body that does not arrive within
  :data:`BODY_SECONDS` is answered 408;
- the answer is produced on a pool thread in batches of up to :data:`BATCH_BYTES` and
  written by the loop, which waits for a slow reader with no thread held;
- ``/events/<token>`` (the client's event stream, which only carries heartbeats: see
  :mod:`server.client`) is answered here, in the loop, without a thread.

The server's own timeouts cover idle connections and dripped headers
(:mod:`server.gunicorn_worker`). Existing ASGI->WSGI adapters were measured against this
requirement and do not meet it: ``a2wsgi`` and ``asgiref.wsgi`` run the whole WSGI call,
body reads and iteration included, on one thread, so a client that sends its body slowly
or reads the answer slowly holds that thread for as long as it likes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment
    from flask import Flask

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Bytes of an answer a pool thread produces before handing them to the loop: large
# enough that a tomogram chunk or shard goes out in one or two hops, small enough that a
# slow reader costs this much memory per connection, not the whole file.
BATCH_BYTES = 256 * 1024
# A request body that has not arrived in this time is answered 408 (slow-body clients).
BODY_SECONDS = 20.0
EVENTS_PATH = re.compile(r"^/events/([^/]+)$")


@dataclass(frozen=True)
class EventStream:
    """The heartbeat-only event stream of :func:`server.client.events`, served in the loop."""

    token: str
    lifetime: float
    heartbeat: float


class AsgiFront:
    """ASGI app: Flask on a bounded thread pool, requests read and answers written by the
    loop (see the module docstring)."""

    def __init__(
        self,
        wsgi_app: WSGIApplication,
        *,
        max_body_bytes: int,
        threads: int,
        events: EventStream | None = None,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.max_body_bytes = max_body_bytes
        self.events = events
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="wsgi")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: nothing here speaks them
            return
        events = self.events
        if events is not None and scope["method"] == "GET":
            match = EVENTS_PATH.match(scope["path"])
            if match and match.group(1) == events.token:
                await serve_events(events, receive, send)
                return
        try:
            body = await asyncio.wait_for(read_body(receive, self.max_body_bytes), BODY_SECONDS)
        except TimeoutError:
            await send_plain(send, 408, b"request body not received in time\n")
            return
        if body is None:  # the client went away
            return
        await self._call_wsgi(build_environ(scope, body), send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.pool.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _call_wsgi(self, environ: WSGIEnvironment, send: Send) -> None:
        loop = asyncio.get_running_loop()
        call = _WsgiCall(self.wsgi_app, environ)
        try:
            batch, more = await loop.run_in_executor(self.pool, call.start)
            await send(
                {"type": "http.response.start", "status": call.status, "headers": call.headers}
            )
            await send({"type": "http.response.body", "body": batch, "more_body": more})
            while more:
                batch, more = await loop.run_in_executor(self.pool, call.next_batch)
                await send({"type": "http.response.body", "body": batch, "more_body": more})
        finally:
            if call.open:
                await loop.run_in_executor(self.pool, call.close)


class _WsgiCall:
    """One WSGI call, driven batch by batch from pool threads."""

    def __init__(self, app: WSGIApplication, environ: WSGIEnvironment) -> None:
        self.app = app
        self.environ = environ
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.result: Iterable[bytes] = ()
        self.chunks: Iterator[bytes] = iter(())
        self.open = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and self.open and self.headers:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = int(status.split(" ", 1)[0])
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return self._write_unsupported

    @staticmethod
    def _write_unsupported(data: bytes) -> object:
        raise NotImplementedError("the WSGI write() callable is not supported")

    def start(self) -> tuple[bytes, bool]:
        """Call the app and produce the first batch (start_response has then been called)."""
        self.result = self.app(self.environ, self.start_response)
        self.open = True
        self.chunks = iter(self.result)
        return self.next_batch()

    def next_batch(self) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        size = 0
        for chunk in self.chunks:
            if chunk:
                parts.append(chunk)
                size += len(chunk)
                if size >= BATCH_BYTES:
                    return b"".join(parts), True
        self.close()
        return b"".join(parts), False

    def close(self) -> None:
        if self.open:
            self.open = False
            close = getattr(self.result, "close", None)
            if close is not None:
                close()


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or its first ``limit + 1`` bytes when it is longer (the app
    then answers 413 without reading on); None when the client disconnected."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            parts.append(chunk)
            size += len(chunk)
        if not message.get("more_body", False) or size > limit:
            return b"".join(parts)[: limit + 1]


def build_environ(scope: Scope, body: bytes) -> WSGIEnvironment:
    """The WSGI environ of an ASGI HTTP scope (PEP 3333; ASGI spec, "WSGI Compatibility")."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    query = scope.get("query_string", b"")
    raw_path = scope.get("raw_path") or scope["path"].encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        # The raw target, as gunicorn's WSGI workers give it: server.data refuses encoded
        # separators in it.
        "RAW_URI": (raw_path + (b"?" + query if query else b"")).decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            # The body is read whole (chunked framing already removed): its length, as
            # read (cut at the limit + 1), is the one Flask sees.
            continue
        key = name if name == "CONTENT_TYPE" else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


async def send_plain(send: Send, status: int, text: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


async def serve_events(stream: EventStream, receive: Receive, send: Send) -> None:
    """Comment heartbeats for ``stream.lifetime`` seconds, or until the client leaves."""
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        (b"x-content-type-options", b"nosniff"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send(
        {"type": "http.response.body", "body": b"retry: 2000\n: connected\n\n", "more_body": True}
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + stream.lifetime
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        while (left := deadline - loop.time()) > 0:
            await asyncio.wait({gone}, timeout=min(stream.heartbeat, left))
            if gone.done():
                return
            await send(
                {"type": "http.response.body", "body": b": heartbeat\n\n", "more_body": True}
            )
        await send({"type": "http.response.body", "body": b""})
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def front(app: Flask, threads: int) -> AsgiFront:
    """The ASGI front of a Flask app made by :func:`server.app.create_app`."""
    from server.services import EXTENSION

    shared = app.extensions[EXTENSION]
    events = EventStream(
        token=shared.config.server.viewer_token,
        lifetime=float(app.config["EVENT_STREAM_SECONDS"]),
        heartbeat=float(app.config["EVENT_HEARTBEAT_SECONDS"]),
    )
    return AsgiFront(
        app,
        max_body_bytes=shared.config.server.max_body_bytes,
        threads=threads,
        events=events,
    )
