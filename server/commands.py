"""``cryoet-ng serve``: run the service on werkzeug's development server.

For production use gunicorn with threaded workers (the client's event stream holds a
connection open for up to 25 s, which would block a sync worker)::

    CRYOET_NG_CONFIG=configs/default.yaml \\
        gunicorn -c python:server.gunicorn_conf --bind 0.0.0.0:8000 server.wsgi:app
"""

from __future__ import annotations

import argparse
import logging
import sys

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.config import Config

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, config: Config) -> int:
    """Serve until interrupted; ``--data-root/--host/--port`` are already in ``config``."""
    from server.app import create_app

    app = create_app(config)
    host, port = config.server.host, config.server.port
    log.info("data root %s, outputs %s", config.data_root, config.out_root)
    base = f"http://{host}:{port}"
    print(f"View Tomogram service on {base}/ (development server; Ctrl-C stops it)", flush=True)
    for run in Catalogue.scan(config.data_root).runs():
        if run.tomograms:
            name = f"{run.dataset_id}/{run.name}"
            print(f"  View Tomogram {name}: {base}/view/{name}")
    sys.stdout.flush()
    app.run(host=host, port=port, threaded=True, use_reloader=False)
    return 0
