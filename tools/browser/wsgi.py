"""Serve a WSGI app on a free local port from a background thread, for as long as a block runs.

werkzeug's threaded development server: the browser opens several connections at once (the
page, its web worker's chunk fetches), so one thread per request keeps them from queueing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from wsgiref.types import WSGIApplication

from werkzeug.serving import BaseWSGIServer, make_server

JOIN_TIMEOUT_S = 10


@dataclass
class ServedApp:
    """A WSGI app served from a background thread on a free local port."""

    base_url: str
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=JOIN_TIMEOUT_S)


@contextmanager
def serve_wsgi(app: WSGIApplication, host: str = "127.0.0.1") -> Iterator[ServedApp]:
    """Serve ``app`` with werkzeug's threaded server on a free port for the duration."""
    # One line per chunk request drowns the test output; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-server", daemon=True)
    thread.start()
    served = ServedApp(f"http://{host}:{server.server_port}", server, thread)
    try:
        yield served
    finally:
        served.close()
