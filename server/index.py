"""``/``: datasets, runs, View Tomogram links and each run's layer decisions; ``/healthz``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, jsonify, render_template

from server.services import services
from server.state_service import EncodedState, UnknownItem
from server.urls import data_url

bp = Blueprint("index", __name__, template_folder="templates")


@dataclass(frozen=True)
class LayerRow:
    name: str
    object: str
    shape: str
    tier: str  # ground truth, curator-recommended, ..., automated prediction
    visible: bool
    reason: str


@dataclass(frozen=True)
class RunRow:
    dataset_id: str
    run_name: str
    tomogram_id: str | None
    layers: list[LayerRow]
    problem: str | None


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/")
def index() -> str:
    states = services().states
    catalogue = states.catalogue()
    rows: list[RunRow] = []
    base = data_url()
    for run in catalogue.runs():
        try:
            encoded = states.state(run.dataset_id, run.name, None, base)
        except UnknownItem as exc:
            rows.append(RunRow(run.dataset_id, run.name, None, [], str(exc)))
            continue
        layers = layer_rows(encoded)
        rows.append(RunRow(run.dataset_id, run.name, encoded.built.tomogram_id, layers, None))
    return render_template("index.html", rows=rows, datasets=catalogue.datasets)


def layer_rows(encoded: EncodedState) -> list[LayerRow]:
    """One row per annotation layer; object and shape come from ngstate's candidates."""
    by_name = {c.name: c for c in encoded.built.candidates}
    rows = []
    for decision in encoded.built.decisions:
        if decision.rule == "image":
            continue
        candidate = by_name.get(decision.layer)
        rows.append(
            LayerRow(
                name=decision.layer,
                object=candidate.annotation.object_name if candidate else decision.layer,
                shape=candidate.shape if candidate else "",
                tier=decision.tier or (candidate.tier_label if candidate else ""),
                visible=decision.visible,
                reason=decision.reason,
            )
        )
    return rows
