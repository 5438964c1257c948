"""Gunicorn settings: ``gunicorn -c python:server.gunicorn_conf server.asgi:app``.

Worker model: one asyncio worker process per core (gunicorn's ``asgi`` worker, with the
first-request deadline of :mod:`server.gunicorn_worker`), each running the Flask app on a
bounded pool of ``CRYOET_NG_THREADS`` threads behind :class:`server.front.AsgiFront`.
The event loop owns the connections: idle keep-alive connections, dripped headers, slow
bodies, slow readers and open ``/events`` streams hold no thread, so they cannot starve
the requests of everyone else (with threaded ``gthread`` workers, 64 such connections
held all 32 threads: ``/healthz`` waited 4.5 s behind idle ones and got no answer in 30 s
behind slow headers or event streams; ``tests/test_server_gunicorn.py``).

Each worker is a process with its own state cache, so workers = cores keeps memory low.
Override with the usual flags or ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import gc
import os
from typing import Any

worker_class = "server.gunicorn_worker.ASGIWorker"
workers = int(os.environ.get("CRYOET_NG_WORKERS", os.cpu_count() or 2))
# Connections one worker keeps open at once (idle and streaming ones included).
worker_connections = 1000
# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads connections
# evenly. With one shared socket the worker that wins the accept race takes most
# long-lived connections: 58 of 64 wrk connections went to one of 2 workers, and in one
# of four runs all of them did, halving /state throughput (3,200 against 12,000 req/s).
reuse_port = True
# Keep-alive lets the viewer reuse connections for its many small chunk requests; a
# kept-alive connection idle (or dripping its next request head) this long is closed.
keepalive = 5
# The worker's heartbeat: a loop blocked this long is restarted.
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
