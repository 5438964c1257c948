"""The replay middleware: identical answers to Flask's, never stale, never for other requests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from server_support import DATASET, RUN, make_config

import server
from server.replay import ReplayMiddleware
from server.state_service import StateService

ORIGIN = "https://portal.example.org"


class App:
    """A Flask app over a private tree copy, counting the requests that reached Flask."""

    def __init__(self, flask_app: Flask, root: Path) -> None:
        self.flask_app = flask_app
        self.root = root
        self.client = flask_app.test_client()
        self.replay: ReplayMiddleware = flask_app.wsgi_app  # type: ignore[assignment]
        self.flask_calls: list[str] = []
        inner = self.replay.app

        def counting(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            self.flask_calls.append(environ["PATH_INFO"])
            return inner(environ, start_response)  # type: ignore[arg-type]

        self.replay.app = counting  # type: ignore[assignment]


@pytest.fixture
def app(server_tree: Path, tmp_path: Path) -> App:
    root = server_tree
    config = make_config(root, str(tmp_path / "states"), cors_origins=(ORIGIN,))
    states = StateService(config, recheck_seconds=0.0)
    return App(server.create_app(config, states=states), root)


def answer(app: App, url: str, **kwargs: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    response = app.client.get(url, **kwargs)
    return response.status_code, sorted(response.headers.items()), response.data


@pytest.mark.parametrize(
    "url",
    [
        f"/state/{DATASET}/{RUN}.json",
        f"/state/{DATASET}/{RUN}.json?tomogram=100",
        f"/view/{DATASET}/{RUN}",
        f"/explain/{DATASET}/{RUN}",
    ],
)
def test_a_repeat_gets_flasks_answer_without_flask(app: App, url: str) -> None:
    first = answer(app, url)
    assert first[0] in (200, 302)
    assert app.flask_calls == [url.split("?")[0]]
    for _ in range(3):
        assert answer(app, url) == first
    assert len(app.flask_calls) == 1
    assert len(app.replay) == 1


def test_a_change_on_disk_is_never_replayed(app: App) -> None:
    url = f"/state/{DATASET}/{RUN}.json"
    before = app.client.get(url).data
    meta_path = next((app.root / DATASET / RUN).rglob("Annotations/101/*[0-9].json"))
    meta = json.loads(meta_path.read_text())
    meta["annotation_object"]["name"] = "renamed object"
    meta_path.write_text(json.dumps(meta))
    after = app.client.get(url).data
    assert after != before and b"renamed object" in after
    assert len(app.flask_calls) == 2
    assert app.client.get(url).data == after  # the new answer is kept in turn
    assert len(app.flask_calls) == 2


def test_host_and_origin_are_part_of_the_key(app: App) -> None:
    url = f"/state/{DATASET}/{RUN}.json"
    here = app.client.get(url, base_url="http://one.example:8000").json
    there = app.client.get(url, base_url="http://two.example:9000").json
    assert "one.example:8000/data" in json.dumps(here)
    assert "two.example:9000/data" in json.dumps(there)
    plain = app.client.get(url)
    cors = app.client.get(url, headers={"Origin": ORIGIN})
    other = app.client.get(url, headers={"Origin": "https://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in plain.headers
    assert cors.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Access-Control-Allow-Origin" not in other.headers
    assert len(app.flask_calls) == 5  # five distinct keys, each answered by Flask once
    assert (
        app.client.get(url, headers={"Origin": ORIGIN}).headers["Access-Control-Allow-Origin"]
        == ORIGIN
    )
    assert len(app.flask_calls) == 5


@pytest.mark.parametrize(
    "headers",
    [{"If-None-Match": '"x"'}, {"Range": "bytes=0-9"}, {"If-Modified-Since": "Mon, 01 Jan 2024"}],
)
def test_conditional_and_range_requests_go_to_flask(app: App, headers: dict[str, str]) -> None:
    url = f"/state/{DATASET}/{RUN}.json"
    app.client.get(url)
    app.client.get(url, headers=headers)
    app.client.get(url, headers=headers)
    assert len(app.flask_calls) == 3


def test_other_methods_errors_and_unmarked_views_are_not_kept(app: App) -> None:
    urls = [
        "/healthz",
        f"/state/{DATASET}/TS_404.json",  # 404
        f"/state/{DATASET}/{RUN}.json?tomogram=99999",  # 404
        f"/state/{DATASET}/{RUN}.json?tomogram=..",  # 400
        f"/data/{DATASET}/{RUN}/run_metadata.json",
    ]
    for url in urls * 2:
        app.client.get(url)
    app.client.head(f"/state/{DATASET}/{RUN}.json")
    app.client.head(f"/state/{DATASET}/{RUN}.json")
    assert len(app.flask_calls) == 2 * len(urls) + 2
    assert len(app.replay) == 0


def test_the_number_of_kept_answers_is_bounded(app: App) -> None:
    app.replay.max_entries = 2
    urls = [f"/state/{DATASET}/{RUN}.json", f"/state/{DATASET}/{RUN}.json?tomogram=100"]
    urls.append(f"/view/{DATASET}/{RUN}")
    for url in urls:
        assert app.client.get(url).status_code in (200, 302)
    assert len(app.replay) == 2
    app.client.get(urls[0])  # the oldest was dropped: Flask again
    assert len(app.flask_calls) == 4
