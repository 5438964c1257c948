"""View Tomogram redirects, state JSON export and explanations of one run's state.

How the state reaches the viewer (``server.state_delivery``): ``url`` (default) puts the
absolute URL of the state's JSON in the fragment (``#!http://host/state/<d>/<r>.json``),
which every Neuroglancer fetches itself before restoring it; ``inline`` puts the JSON.
Fetching first is what keeps an unpatched Neuroglancer from dropping layers on a cold load:
the fetch runs the client's HTTP code once, so the restore that follows no longer pauses
to compile it, and the restore-order bug (README) has no window to fire in.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from server import paths, replay
from server.services import services
from server.state_service import EncodedState
from server.urls import data_url, viewer_redirect

bp = Blueprint("links", __name__)


def encoded_state(dataset_id: str, run_name: str) -> EncodedState:
    """The state named by the URL and ``?tomogram=``, every parameter validated first."""
    dataset_id = paths.dataset_id(dataset_id)
    run_name = paths.run_name(run_name)
    tomogram = paths.tomogram_id(request.args.get("tomogram"))
    key = (dataset_id, run_name, tomogram, data_url())
    encoded = services().states.state(*key)
    replay.mark(key, encoded)
    return encoded


def by_url() -> bool:
    """Whether View Tomogram hands the viewer the state's URL (``server.state_delivery``)."""
    return services().config.server.state_delivery == "url"


@bp.get("/view/<dataset_id>/<run_name>")
def view(dataset_id: str, run_name: str) -> BaseResponse:
    encoded = encoded_state(dataset_id, run_name)  # validates, 404s for unknown runs
    if not by_url():
        return viewer_redirect(encoded.fragment)
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
    encoded = encoded_state(dataset_id, run_name)
    response = Response(encoded.body, mimetype="application/json")
    response.headers["Content-Disposition"] = encoded.disposition
    return response


@bp.get("/explain/<dataset_id>/<run_name>")
def explain(dataset_id: str, run_name: str) -> Response:
    return jsonify(encoded_state(dataset_id, run_name).built.explanation())
