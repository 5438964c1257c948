"""The self-hosted Neuroglancer client (``/v/<token>/``) and the endpoints it calls back.

The client is the build shipped in the ``neuroglancer`` wheel. It only starts under a path
of the form ``/v/<token>/``, opens an EventSource at ``/events/<token>`` and POSTs its state
to ``/state/<token>`` when it changes. There is no Python viewer behind it: the event
stream stays open with comment heartbeats only (for a bounded time, so a worker thread is
never pinned; EventSource reconnects by itself), and state posts are answered with 412
(the client's "server state changed" answer, which it ignores silently) without reading
the body.

One bug of the shipped client is patched as the main bundle is served (see
:data:`ANNOTATION_TOJSON_FIX`): without it a cold page load sometimes drops the tomogram layer.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request, send_from_directory

from server.app import services

bp = Blueprint("client", __name__)
log = logging.getLogger(__name__)

# Neuroglancer bug (2.41.2; upstream main unchanged): AnnotationUserLayer assigns
# `localAnnotationRelationships` only in restoreState(), but its toJSON() reads `.length` of it.
# Restoring the layer list first constructs every layer, then restores them one by one. If the
# URL-hash binding's debounced toJSON (lodash debounce, wait 200 ms, maxWait 400 ms) comes due
# during that loop, which happens on cold page loads where the restore is slow, it runs
# synchronously inside a layer's change signal, an annotation layer not yet restored throws
# "Cannot read properties of undefined (reading 'length')", and the layer being restored (the
# first, i.e. the tomogram) is deleted. The fix gives the destructuring in toJSON() the same
# default restoreState() uses (["segments"]). Property names survive minification; the local
# name is matched.
ANNOTATION_TOJSON_FIX = (
    re.compile(rb"\{localAnnotationRelationships:([\w$]+)\}=this;"),
    rb'{localAnnotationRelationships:\1=["segments"]}=this;',
)


@functools.cache
def _patched_main_bundle(client_dir: Path) -> tuple[str, bytes] | None:
    """(file name, patched bytes) of the client's main bundle, or None if the fix does not apply."""
    pattern, replacement = ANNOTATION_TOJSON_FIX
    for path in sorted(client_dir.glob("main.*.js")):
        patched, count = pattern.subn(replacement, path.read_bytes())
        if count == 1:
            return path.name, patched
    log.warning("neuroglancer client in %s: annotation toJSON fix not applied", client_dir)
    return None


def _check_token(token: str) -> None:
    if token != services().config.server.viewer_token:
        abort(404, description="unknown viewer token")


@bp.get("/v/<token>/")
def viewer_root(token: str) -> Response:
    return client_file(token, "index.html")


@bp.get("/v/<token>/<path:filename>")
def client_file(token: str, filename: str) -> Response:
    _check_token(token)
    patched = _patched_main_bundle(services().client_dir)
    if patched is not None and filename == patched[0]:
        response = Response(patched[1], mimetype="text/javascript")
        response.set_etag(hashlib.sha256(patched[1]).hexdigest()[:32])
        response.make_conditional(request)
    else:
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
