"""View Tomogram redirects, state JSON export, explanations and saved-state short links.

Redirect targets are built only from the configuration (``viewer_url`` or the self-hosted
client path): nothing a client sends can choose where a redirect goes.
"""

from __future__ import annotations

import urllib.parse

from flask import Blueprint, Response, jsonify, redirect, request, url_for

from server import paths, replay
from server.app import services
from server.cache import FRAGMENT_SAFE, CachedState
from server.states_api import saved_state

bp = Blueprint("links", __name__)


def data_url() -> str:
    """Where the browser finds the data: the configured URL, else this server's /data."""
    # Not request.host_url: that IRI-decodes the host on every call (~40 us); the state
    # cache is keyed by this string, so it must be cheap.
    return (
        services().config.data_url or f"{request.scheme}://{request.host}{request.root_path}/data"
    )


def viewer_base() -> str:
    """The Neuroglancer client URL, without any fragment."""
    configured = services().config.viewer_url
    if configured:
        return configured.split("#", 1)[0]
    return url_for("client.viewer_root", token=services().config.server.viewer_token)


def viewer_redirect(fragment: str) -> Response:
    response = redirect(f"{viewer_base()}#!{fragment}", code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


def cached_state(dataset_id: str, run_name: str) -> CachedState:
    """The state named by the URL and ``?tomogram=``, every parameter validated first."""
    dataset_id = paths.dataset_id(dataset_id)
    run_name = paths.run_name(run_name)
    tomogram = paths.tomogram_id(request.args.get("tomogram"))
    key = (dataset_id, run_name, tomogram, data_url())
    cached = services().states.state(*key)
    replay.mark(key, cached)
    return cached


@bp.get("/view/<dataset_id>/<run_name>")
def view(dataset_id: str, run_name: str) -> Response:
    return viewer_redirect(cached_state(dataset_id, run_name).fragment)


@bp.get("/state/<dataset_id>/<run_name>.json")
def state_json(dataset_id: str, run_name: str) -> Response:
    cached = cached_state(dataset_id, run_name)
    response = Response(cached.body, mimetype="application/json")
    response.headers["Content-Disposition"] = cached.disposition
    return response


@bp.get("/explain/<dataset_id>/<run_name>")
def explain(dataset_id: str, run_name: str) -> Response:
    return jsonify(cached_state(dataset_id, run_name).built.explanation())


@bp.get("/s/<state_id>")
def short_link(state_id: str) -> Response:
    body = saved_state(state_id)
    return viewer_redirect(urllib.parse.quote(body.decode(), safe=FRAGMENT_SAFE))
