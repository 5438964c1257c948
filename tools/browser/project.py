"""The project's own server (``server.create_app``) served locally, and its View Tomogram link.

:func:`serve_project` is what ``tests/test_browser.py`` and ``tools/screenshots.py`` run: the
default configuration over a data tree, every request recorded (:class:`RequestLog`).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.browser.reports import ViewerReport
from tools.browser.request_log import RequestLog
from tools.browser.viewer import Viewer
from tools.browser.wsgi import serve_wsgi

HTTP_TIMEOUT_S = 20
# Short-lived event streams, so shutting down never waits on one held open by a client
# (the served client opens none: see server/client.py).
EVENT_STREAM_S = 5.0
EVENT_HEARTBEAT_S = 1.0


@dataclass
class ProjectServer:
    """The project's server on a local port, with the log of every request it answered."""

    base_url: str
    requests: RequestLog

    def url(self, path: str) -> str:
        return self.base_url + path

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=HTTP_TIMEOUT_S) as response:
            return json.load(response)


@contextmanager
def serve_project(
    data_root: Path, states_dir: Path, overrides: dict[str, Any] | None = None
) -> Iterator[ProjectServer]:
    """Serve ``data_root`` with the default configuration, saved states in ``states_dir``.

    ``overrides``: more dotted configuration keys, e.g. ``{"server.cors_origins": [...]}``.
    """
    from cryoet_ng.config import load_config
    from server import create_app

    overrides = {
        "data_root": str(data_root),
        "server.states_db": str(states_dir),
        **(overrides or {}),
    }
    app = create_app(load_config(None, overrides))
    app.config["EVENT_STREAM_SECONDS"] = EVENT_STREAM_S
    app.config["EVENT_HEARTBEAT_SECONDS"] = EVENT_HEARTBEAT_S
    log = RequestLog(app)
    with serve_wsgi(log) as served:
        yield ProjectServer(served.base_url, log)


def view_screenshot_name(dataset: str, run: str) -> str:
    """File name of a run's View Tomogram screenshot (tests' artifacts and the README's)."""
    return f"view-{dataset}-{run}.png"


def open_view(
    viewer: Viewer, server: ProjectServer, dataset: str, run: str, timeout: float
) -> ViewerReport:
    """Follow a run's View Tomogram link and wait (bounded) until the viewer has drawn it."""
    viewer.get(server.url(f"/view/{dataset}/{run}"))
    return viewer.wait_ready(timeout, allow_errors=True)
