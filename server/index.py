"""``/``: datasets, runs, View Tomogram links and each run's layers; ``/healthz``.

Each run is rendered by the ``run_section`` macro (``templates/_run.html``) from the view
model of :mod:`server.run_view`: what every layer is (status, method, authors, count,
deposition, spacing), whether it is visible and why, and what was left out or is stale.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template

from server.run_view import RunView, failed_run, run_view
from server.services import services
from server.state_service import UnknownItem
from server.urls import data_url

bp = Blueprint("index", __name__, template_folder="templates")


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/")
def index() -> str:
    states = services().states
    catalogue = states.catalogue()
    rows: list[RunView] = []
    base = data_url()
    for run in catalogue.runs():
        try:
            encoded = states.state(run.dataset_id, run.name, None, base)
        except UnknownItem as exc:
            rows.append(failed_run(run, str(exc)))
            continue
        rows.append(run_view(catalogue, run, encoded, base))
    return render_template("index.html", rows=rows, datasets=catalogue.datasets)
