"""View Tomogram redirects, state JSON export, explanations and saved-state short links.

Redirect targets are built only from the configuration (``viewer_url`` or the self-hosted
client path): nothing a client sends can choose where a redirect goes.

How the state reaches the viewer (``server.state_delivery``): ``url`` (default) puts the
absolute URL of the state's JSON in the fragment (``#!http://host/state/<d>/<r>.json``),
which every Neuroglancer fetches itself before restoring it; ``inline`` puts the JSON.
Fetching first is what keeps an unpatched Neuroglancer from dropping layers on a cold load:
the fetch runs the client's HTTP code once, so the restore that follows no longer pauses
to compile it, and the restore-order bug (README) has no window to fire in.
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


def by_url() -> bool:
    return services().config.server.state_delivery == "url"


@bp.get("/view/<dataset_id>/<run_name>")
def view(dataset_id: str, run_name: str) -> Response:
    cached = cached_state(dataset_id, run_name)  # validates, 404s for unknown runs
    if not by_url():
        return viewer_redirect(cached.fragment)
    tomogram = request.args.get("tomogram")
    query = {"tomogram": tomogram} if tomogram is not None else {}
    return viewer_redirect(
        url_for(
            "links.state_json",
            dataset_id=dataset_id,
            run_name=run_name,
            _external=True,
            **query,
        )
    )


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
    body = saved_state(state_id)  # 400 / 404 before any redirect
    if by_url():
        return viewer_redirect(url_for("states.get_state", state_id=state_id, _external=True))
    return viewer_redirect(urllib.parse.quote(body.decode(), safe=FRAGMENT_SAFE))
