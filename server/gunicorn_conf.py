"""Gunicorn settings: ``gunicorn -c python:server.gunicorn_conf server.wsgi:app``.

Threaded workers (``gthread``): threads cover file reads, slow clients and, for a viewer
client the bundle patches of ``server/client.py`` did not apply to, its ``/events`` stream
(25 s), none of which may pin a whole worker. Each worker is a process with its own state
cache, so workers = cores keeps memory low. Override with the usual flags or ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import gc
import os
from typing import Any

worker_class = "gthread"
workers = int(os.environ.get("CRYOET_NG_WORKERS", os.cpu_count() or 2))
threads = int(os.environ.get("CRYOET_NG_THREADS", 16))
# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads connections
# evenly. With one shared socket the worker that wins the accept race takes most
# long-lived connections: 58 of 64 wrk connections went to one of 2 workers, and in one
# of four runs all of them did, halving /state throughput (3,200 against 12,000 req/s).
reuse_port = True
# Keep-alive lets the viewer reuse connections for its many small chunk requests.
keepalive = 5
# A request (not an event stream, which ends by itself at 25 s) never takes this long.
timeout = 60
graceful_timeout = 30
bind = os.environ.get("CRYOET_NG_BIND", "127.0.0.1:8000")
accesslog = os.environ.get("CRYOET_NG_ACCESS_LOG") or None


def post_worker_init(worker: Any) -> None:
    """Move everything loaded so far out of the garbage collector's sight.

    A loaded worker holds a few hundred thousand long-lived objects (Flask, neuroglancer,
    tensorstore, numpy). Full collections walked all of them: under load through Flask,
    7 full collections per 10 s per worker, up to 42 ms each, every request in flight
    stalled meanwhile. After ``gc.freeze()`` the longest was 0.7 ms.
    """
    gc.freeze()
