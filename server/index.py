"""``/``: datasets with their counts, paged and searchable; ``/datasets/<id>``: a dataset's
runs, paged and searchable, each rendered by the ``run_section`` macro
(``templates/_run.html``) from the view model of :mod:`server.run_view`; ``/api/datasets``
and ``/api/datasets/<id>``: the same listings as JSON for programs; ``/healthz``.

At portal scale (100 datasets, 30,000 runs) the front page lists datasets only, from the
index (:mod:`server.listing`); a page of a dataset builds the states of its 20 runs. A
tree of at most :data:`INLINE_RUNS` runs (the sample, a laptop demo) also shows every run
on the front page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, jsonify, render_template, request, url_for

from cryoet_ng.tree_view import DatasetInfo, RunInfo
from server import paths
from server.listing import (
    DATASETS_PER_PAGE,
    RUNS_PER_PAGE,
    Page,
    dataset_rows,
    inline_runs,
    run_rows,
)
from server.run_view import RunView, failed_run, run_view
from server.services import services
from server.state_service import UnknownItem
from server.urls import data_url

bp = Blueprint("index", __name__, template_folder="templates")

INLINE_RUNS = 24
MAX_QUERY = 200


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


def _query() -> str:
    query = request.args.get("q", "")
    if len(query) > MAX_QUERY:
        abort(400, description=f"search text longer than {MAX_QUERY} characters")
    return query


def _page_number() -> int:
    text = request.args.get("page", "1")
    if not text.isdigit() or len(text) > 9:
        abort(400, description="page must be a positive number")
    return int(text)


def run_views(dataset_id: str, runs: list[RunInfo]) -> list[RunView]:
    """The index rows of ``runs`` (each its default tomogram's state)."""
    states = services().states
    base = data_url()
    views = []
    for info in runs:
        try:
            encoded = states.state(dataset_id, info.name, None, base)
            run = states.run(dataset_id, info.name)
        except UnknownItem as exc:
            views.append(failed_run(dataset_id, info.name, str(exc)))
            continue
        views.append(run_view(states.catalogue_of(run), run, encoded, states.tree_url(base)))
    return views


@bp.get("/")
def index() -> str:
    tree = services().states.tree
    query = _query()
    page = Page.of(dataset_rows(tree, query), _page_number(), DATASETS_PER_PAGE)
    inline: dict[str, list[RunView]] = {}
    if not query and inline_runs(tree, INLINE_RUNS):
        inline = {row.id: run_views(row.id, list(row.info.runs)) for row in page.items}
    return render_template(
        "index.html", page=page, query=query, inline=inline, warnings=tree.warnings
    )


def _dataset(dataset_id: str) -> DatasetInfo:
    info = services().states.tree.dataset(paths.dataset_id(dataset_id))
    if info is None:
        raise UnknownItem(f"no dataset {dataset_id}")
    return info


@bp.get("/datasets/<dataset_id>")
def dataset(dataset_id: str) -> str:
    info = _dataset(dataset_id)
    query = _query()
    page = Page.of(run_rows(services().states.tree, info, query), _page_number(), RUNS_PER_PAGE)
    runs = run_views(info.id, page.items)
    return render_template("dataset.html", dataset=info, page=page, query=query, runs=runs)


def _page_json(page: Page[Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"page": page.number, "pages": page.pages, "total": page.total, "items": items}


@bp.get("/api/datasets")
def datasets_json() -> Response:
    """Datasets with counts (null when the tree has no index), paged and searchable."""
    query = _query()
    tree = services().states.tree
    page = Page.of(dataset_rows(tree, query), _page_number(), DATASETS_PER_PAGE)
    items = [
        {
            "id": row.id,
            "title": row.info.title,
            "runs": len(row.info.runs),
            "tomograms": row.info.tomograms,
            "annotations": row.info.annotations,
            "matches": list(row.matches),
            "url": url_for("index.dataset_json", dataset_id=row.id, _external=True),
        }
        for row in page.items
    ]
    return jsonify(_page_json(page, items))


@bp.get("/api/datasets/<dataset_id>")
def dataset_json(dataset_id: str) -> Response:
    """One dataset's runs with counts and their View Tomogram and state URLs, paged."""
    info = _dataset(dataset_id)
    page = Page.of(run_rows(services().states.tree, info, _query()), _page_number(), 1000)
    items = [
        {
            "name": run.name,
            "tomograms": run.tomograms,
            "annotations": run.annotations,
            "view": url_for("links.view", dataset_id=info.id, run_name=run.name, _external=True),
            "state": url_for(
                "links.state_json", dataset_id=info.id, run_name=run.name, _external=True
            ),
        }
        for run in page.items
    ]
    body = _page_json(page, items)
    return jsonify({"id": info.id, "title": info.title, **body})
