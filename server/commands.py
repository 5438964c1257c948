"""``cryoet-ng serve``: run the service on werkzeug's development server.

Exit status 2, before any URL is printed, when the port cannot be listened on or the data
root is missing or not a portal tree.

For production use gunicorn with asyncio workers (see :mod:`server.gunicorn_conf`)::

    CRYOET_NG_CONFIG=/etc/cryoet-ng.yaml \\
        gunicorn -c python:server.gunicorn_conf --bind 0.0.0.0:8000 server.asgi:app
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from cryoet_ng.commands import Command, UsageError, parse_options, require_selection
from cryoet_ng.config import Config, with_overrides

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    data_root: Path | None  # None: the configured data root
    host: str | None
    port: int | None


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", type=Path, help="data tree (overrides the configuration)")
    parser.add_argument("--host", help="listen address")
    parser.add_argument("--port", type=int, help="listen port")


def check_port(host: str, port: int) -> None:
    """:class:`UsageError` unless ``host:port`` can be listened on right now (as werkzeug
    will, with SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def run_serve(args: argparse.Namespace, config: Config) -> int:
    """Serve until interrupted."""
    options = parse_options(ServeOptions, args)
    config = with_overrides(
        config,
        {
            "data_root": None if options.data_root is None else str(options.data_root.resolve()),
            "server.host": options.host,
            "server.port": options.port,
        },
    )
    from cryoet_ng.catalogue import Catalogue
    from server.app import create_app

    host, port = config.server.host, config.server.port
    check_port(host, port)  # before building anything or printing any URL
    catalogue = Catalogue.scan(config.data_root)
    require_selection(catalogue)
    app = create_app(config)
    log.info("data root %s, outputs %s", config.data_root, config.out_root)
    base = f"http://{host}:{port}"
    print(f"View Tomogram service on {base}/ (development server; Ctrl-C stops it)", flush=True)
    for run in catalogue.runs():
        if run.tomograms:
            name = f"{run.dataset_id}/{run.name}"
            print(f"  View Tomogram {name}: {base}/view/{name}")
    sys.stdout.flush()
    app.run(host=host, port=port, threaded=True, use_reloader=False)
    return 0


COMMANDS = (
    Command(
        "serve",
        "run the View Tomogram service (development server)",
        add_serve_arguments,
        run_serve,
    ),
)
