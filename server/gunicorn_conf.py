"""Gunicorn settings: ``gunicorn -c python:server.gunicorn_conf server.wsgi:app``.

Threaded workers (``gthread``): a Neuroglancer client keeps ``/events/<token>`` open for
up to 25 s, which would pin a sync worker; with threads it costs one thread. Each worker
is a process with its own state cache, so workers = cores keeps memory low while threads
cover I/O waits. Override with the usual flags or ``GUNICORN_CMD_ARGS``.
"""

from __future__ import annotations

import os

worker_class = "gthread"
workers = int(os.environ.get("CRYOET_NG_WORKERS", os.cpu_count() or 2))
threads = int(os.environ.get("CRYOET_NG_THREADS", 16))
# Keep-alive lets the viewer reuse connections for its many small chunk requests.
keepalive = 5
# A request (not an event stream, which ends by itself at 25 s) never takes this long.
timeout = 60
graceful_timeout = 30
bind = os.environ.get("CRYOET_NG_BIND", "127.0.0.1:8000")
accesslog = os.environ.get("CRYOET_NG_ACCESS_LOG") or None
