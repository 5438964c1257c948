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
from typing import TYPE_CHECKING

from cryoet_ng.commands import Command, UsageError, parse_options
from cryoet_ng.config import Config, with_overrides

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    data_root: str | None  # a folder or URL; None: the configured data root
    host: str | None
    port: int | None
    out: str | None = None  # output root (folder or URL); None: the configured one
    list_runs: int = 20


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root",
        help="data tree: folder, s3://, gs:// or https:// URL (overrides the configuration)",
    )
    parser.add_argument(
        "--out", metavar="OUT_ROOT", help="precompute output root: folder, s3:// or gs:// URL"
    )
    parser.add_argument(
        "--list-runs", type=int, default=20, metavar="N", help="View Tomogram links printed"
    )
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
    from cryoet_ng.store import is_url

    def root(text: str | None) -> str | None:
        return text if text is None or is_url(text) else str(Path(text).resolve())

    if options.data_root is not None and is_url(options.data_root) and options.out is None:
        config = config.replace(output_root=None)  # a URL tree's outputs are beside it
    overrides = {"data_root": root(options.data_root), "output_root": root(options.out)}
    config = with_overrides(
        config, {**overrides, "server.host": options.host, "server.port": options.port}
    )
    from server.app import create_app

    host, port = config.server.host, config.server.port
    check_port(host, port)  # before building anything or printing any URL
    app = create_app(config)
    _require_tree(app)
    log.info("data root %s, outputs %s", config.data_root, config.out_root)
    base = f"http://{host}:{port}"
    print(f"View Tomogram service on {base}/ (development server; Ctrl-C stops it)", flush=True)
    _print_links(app, base, options.list_runs)
    app.run(host=host, port=port, threaded=True, use_reloader=False)
    return 0


def _require_tree(app: Flask) -> None:
    """:class:`UsageError` when the data root is missing or not a portal tree: one listing
    of the root (or the index's top file), not a scan of the tree."""
    from server.services import services

    with app.app_context():
        tree = services().states.tree
        if not tree.dataset_ids():
            reason = tree.warnings[0].message if tree.warnings else "no dataset folders"
            raise UsageError(f"{tree.root}: {reason}")


def _print_links(app: Flask, base: str, limit: int) -> None:
    """The first ``limit`` runs' View Tomogram links, from the index or the listings."""
    from server.services import services

    with app.app_context():
        tree = services().states.tree
        printed = 0
        for dataset_id in tree.dataset_ids():
            info = tree.dataset(dataset_id)
            for run in info.runs if info is not None else ():
                if printed >= limit:
                    print(f"  ... (every run: {base}/)")
                    sys.stdout.flush()
                    return
                if run.tomograms != 0:
                    name = f"{dataset_id}/{run.name}"
                    print(f"  View Tomogram {name}: {base}/view/{name}")
                    printed += 1
        for warning in tree.warnings:
            print(f"  warning: {warning}")


COMMANDS = (
    Command(
        "serve",
        "run the View Tomogram service (development server)",
        add_serve_arguments,
        run_serve,
    ),
)
