"""View Tomogram redirects, state JSON export and explanations of one run's state."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
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


@bp.get("/view/<dataset_id>/<run_name>")
def view(dataset_id: str, run_name: str) -> BaseResponse:
    return viewer_redirect(encoded_state(dataset_id, run_name).fragment)


@bp.get("/state/<dataset_id>/<run_name>.json")
def state_json(dataset_id: str, run_name: str) -> Response:
    encoded = encoded_state(dataset_id, run_name)
    response = Response(encoded.body, mimetype="application/json")
    response.headers["Content-Disposition"] = encoded.disposition
    return response


@bp.get("/explain/<dataset_id>/<run_name>")
def explain(dataset_id: str, run_name: str) -> Response:
    return jsonify(encoded_state(dataset_id, run_name).built.explanation())
