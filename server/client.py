"""The self-hosted Neuroglancer client (``/v/<token>/``) and the endpoints it calls back.

The client is the build shipped in the ``neuroglancer`` wheel, made for a Python viewer
behind it. It only starts under a path of the form ``/v/<token>/``. There is no Python viewer
here, and two textual patches are applied as the main bundle is served (:data:`BUNDLE_PATCHES`):
one fixes a bug that sometimes dropped the tomogram layer on a cold page load, the other stops
the client from opening its EventSource at ``/events/<token>``.

For an unpatched client (a neuroglancer release the patterns no longer match) the callbacks
still answer: ``/events/<token>`` stays open with comment heartbeats only, for a bounded time
(EventSource reconnects by itself), and state posts to ``/state/<token>`` are answered with
412 (the client's "server state changed" answer, which it ignores silently) without reading
the body.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request, send_from_directory

from server.services import services

bp = Blueprint("client", __name__)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundlePatch:
    """One textual fix of the client's minified main bundle, expected to match exactly once."""

    name: str
    pattern: re.Pattern[bytes]
    replacement: bytes


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
ANNOTATION_TOJSON_FIX = BundlePatch(
    "annotation layer toJSON before restoreState",
    re.compile(rb"\{localAnnotationRelationships:([\w$]+)\}=this;"),
    rb'{localAnnotationRelationships:\1=["segments"]}=this;',
)
# The shipped client is the Python package's: its ClientStateReceiver keeps an EventSource on
# /events/<token> open to receive state pushed by a Python viewer. There is none behind this
# server, and with the URL-hash state (every View Tomogram link) the client never posts its
# viewer state either, so the stream only cost one gunicorn thread per open viewer and a
# "Disconnected from Python server" banner each time it was renewed. The receiver's connect()
# now returns at once; /events stays for a client this patch did not apply to.
NO_PYTHON_EVENT_STREAM = BundlePatch(
    "no event stream to a Python viewer",
    re.compile(rb'connect\(\)\{this\.status\.setText\("Connecting to Python server"\)'),
    rb'connect(){return;this.status.setText("Connecting to Python server")',
)
BUNDLE_PATCHES = (ANNOTATION_TOJSON_FIX, NO_PYTHON_EVENT_STREAM)


@functools.cache
def _patched_main_bundle(client_dir: Path) -> tuple[str, bytes] | None:
    """(file name, patched bytes) of the client's main bundle, or None if no patch applies."""
    for path in sorted(client_dir.glob("main.*.js")):
        data, applied = path.read_bytes(), False
        for patch in BUNDLE_PATCHES:
            patched, count = patch.pattern.subn(patch.replacement, data)
            if count == 1:
                data, applied = patched, True
            else:
                log.warning("%s: patch %r matched %d times", path, patch.name, count)
        if applied:
            return path.name, data
    log.warning("neuroglancer client in %s: no bundle patch applied", client_dir)
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
