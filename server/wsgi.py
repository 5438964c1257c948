"""WSGI entry point: ``gunicorn server.wsgi:app``.

The configuration file comes from ``CRYOET_NG_CONFIG`` (default: the shipped
cryoet_ng/default.yaml); any key can be overridden with ``CRYOET_NG__SECTION__KEY``
variables, e.g. ``CRYOET_NG__DATA_ROOT=/srv/portal``.
"""

from __future__ import annotations

from server.app import create_app

app = create_app()
