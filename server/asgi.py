"""ASGI entry point, the production one:
``gunicorn -c python:server.gunicorn_conf server.asgi:app``.

The Flask app of :func:`server.app.create_app` (configuration from ``CRYOET_NG_CONFIG``, as
:mod:`server.wsgi`) behind :class:`server.front.AsgiFront`, with a pool of
``CRYOET_NG_THREADS`` (default 16) threads per worker process.
"""

from __future__ import annotations

import os

from server.app import create_app
from server.front import front

app = front(create_app(), threads=int(os.environ.get("CRYOET_NG_THREADS", 16)))
