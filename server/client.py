"""The self-hosted Neuroglancer client (``/v/<token>/``) and the endpoints it calls back.

The client is the build shipped in the ``neuroglancer`` wheel. It only starts under a path
of the form ``/v/<token>/``, opens an EventSource at ``/events/<token>`` and POSTs its state
to ``/state/<token>`` when it changes. There is no Python viewer behind it: the event
stream stays open with comment heartbeats only (for a bounded time, so a worker thread is
never pinned; EventSource reconnects by itself), and state posts are answered with 412
(the client's "server state changed" answer, which it ignores silently) without reading
the body.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Response, abort, current_app, send_from_directory

from server.app import services

bp = Blueprint("client", __name__)


def _check_token(token: str) -> None:
    if token != services().config.server.viewer_token:
        abort(404, description="unknown viewer token")


@bp.get("/v/<token>/")
def viewer_root(token: str) -> Response:
    return client_file(token, "index.html")


@bp.get("/v/<token>/<path:filename>")
def client_file(token: str, filename: str) -> Response:
    _check_token(token)
    # send_from_directory uses safe_join: nothing outside the client folder is served.
    response = send_from_directory(services().client_dir, filename, conditional=True)
    if filename != "index.html":
        # Bundle names carry a content hash, so they can be cached for long.
        response.cache_control.public = True
        response.cache_control.max_age = 86400
    return response


@bp.get("/events/<token>")
def events(token: str) -> Response:
    _check_token(token)
    lifetime = float(current_app.config["EVENT_STREAM_SECONDS"])
    heartbeat = float(current_app.config["EVENT_HEARTBEAT_SECONDS"])

    def stream() -> Iterator[str]:
        yield "retry: 2000\n: connected\n\n"
        deadline = time.monotonic() + lifetime
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(heartbeat, left))
            yield ": heartbeat\n\n"

    response = Response(stream(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # proxies must not buffer the stream
    return response


@bp.post("/state/<token>")
def client_state_post(token: str) -> tuple[str, int]:
    _check_token(token)
    return "", 412
