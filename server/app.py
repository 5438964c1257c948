"""The Flask application factory and JSON error handling.

``create_app(config)`` builds one :class:`~server.services.Services` (config, state
service, saved-state store, client folder), attaches it, and registers the blueprints,
which reach it through :func:`server.services.services`. Called without a config
(``gunicorn 'server:create_app()'``) it loads the file named by ``CRYOET_NG_CONFIG``
(default: the packaged default configuration).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from cryoet_ng.config import Config, load_config
from server import client, data, index, states_api, viewer_links
from server.paths import BadParameter
from server.replay import ReplayMiddleware
from server.services import Services, attach, neuroglancer_client_dir
from server.state_service import StateService, UnknownItem
from server.state_store import StateStore, open_store

log = logging.getLogger(__name__)

CONFIG_ENV = "CRYOET_NG_CONFIG"
# Paths whose GET answers carry CORS headers for the configured origins.
CORS_PREFIXES = ("/data/", "/state/", "/states/", "/explain/")
BLUEPRINTS = (index.bp, viewer_links.bp, states_api.bp, data.bp, client.bp)


def config_from_env() -> Config:
    path = os.environ.get(CONFIG_ENV)
    return load_config(path or None)


def create_app(
    config: Config | None = None,
    *,
    states: StateService | None = None,
    store: StateStore | None = None,
    event_stream_seconds: float = 25.0,
    event_heartbeat_seconds: float = 10.0,
) -> Flask:
    """The View Tomogram service for ``config`` (default: from ``CRYOET_NG_CONFIG``).

    ``states`` and ``store`` replace the state service and saved-state store built from
    ``config`` (a caller that keeps them can tune them, e.g. ``states.recheck_seconds``);
    ``event_*_seconds`` are the lifetime and heartbeat of the client's event stream.
    """
    if config is None:
        config = config_from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.server.max_body_bytes
    # No 308 redirects for '//' (or a decoded '%2f'): such data paths are refused instead.
    app.url_map.merge_slashes = False
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.config["EVENT_STREAM_SECONDS"] = event_stream_seconds
    app.config["EVENT_HEARTBEAT_SECONDS"] = event_heartbeat_seconds
    roots = [config.data_root.resolve()]
    if config.out_root.resolve() != roots[0]:
        roots.append(config.out_root.resolve())
    shared = Services(
        config=config,
        states=states if states is not None else StateService(config),
        store=store if store is not None else open_store(config),
        data_roots=tuple(roots),
        client_dir=neuroglancer_client_dir(),
    )
    attach(app, shared)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    _register_errors(app)
    app.after_request(_after_request(config.server.cors_origins))
    # Flask documents wrapping wsgi_app this way; mypy sees a method being replaced.
    app.wsgi_app = ReplayMiddleware(app.wsgi_app, shared.states)  # type: ignore[method-assign]
    return app


def _register_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        response = jsonify(error=exc.name, status=code, message=exc.description)
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response, code

    @app.errorhandler(BadParameter)
    def bad_parameter(exc: BadParameter) -> tuple[Response | str, int]:
        if _wants_html():
            return render_template("error.html", title="Bad link", message=str(exc)), 400
        return jsonify(error="Bad Request", status=400, message=str(exc)), 400

    @app.errorhandler(UnknownItem)
    def not_found(exc: UnknownItem) -> tuple[Response | str, int]:
        message = str(exc.args[0]) if exc.args else "not found"
        if _wants_html():  # a person following a View Tomogram link, not a program
            return render_template("error.html", title="Not found", message=message), 404
        return jsonify(error="Not Found", status=404, message=message), 404

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="Internal Server Error", status=500, message="internal error"), 500


def _wants_html() -> bool:
    """The client prefers HTML to JSON (a browser's Accept); no Accept header means JSON."""
    accept = request.accept_mimetypes
    return accept.best_match(["application/json", "text/html"]) == "text/html"


def _after_request(cors_origins: tuple[str, ...]) -> Callable[[Response], Response]:
    """``nosniff`` everywhere, CORS headers on GET/HEAD/OPTIONS answers for allowed origins."""
    allow_any = "*" in cors_origins
    allowed = frozenset(cors_origins)

    def after(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if not allowed:  # the common same-origin deployment: nothing more to do
            return response
        origin = request.headers.get("Origin")
        if not origin or not request.path.startswith(CORS_PREFIXES):
            return response
        if allow_any:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.vary.add("Origin")
        else:
            return response
        response.headers["Access-Control-Expose-Headers"] = (
            "Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified"
        )
        if request.method == "OPTIONS":  # preflight, e.g. for a non-simple Range
            response.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Range, If-None-Match"
            response.headers["Access-Control-Max-Age"] = "86400"
        return response

    return after
