"""Saved states (POST /states, GET /states/<id>, GET /s/<id>) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pg_fixture import postgres_url  # noqa: F401  (session fixture)
from server_support import DATASET, RUN, TreeFactory, make_config

import server
from cryoet_ng.config import load_config
from server.state_store import STATE_ID, PostgresStore, SQLiteStore, state_id_for

MAX_BODY = 50_000


@pytest.fixture(scope="module")
def tree(make_server_tree: TreeFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_server_tree(tmp_path_factory.mktemp("st") / "t")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def states_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path_factory.mktemp("sqlite") / "states")
        return
    base = request.getfixturevalue("postgres_url")
    # A fresh database for this module (ids are content addresses, so tests that need
    # an unknown id use content no test stores).
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="module")
def app(tree: Path, states_db: str) -> Flask:
    return server.create_app(make_config(tree, states_db, max_body_bytes=MAX_BODY))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def a_state(client: FlaskClient) -> dict:
    return client.get(f"/state/{DATASET}/{RUN}.json").json


def post(client: FlaskClient, body: bytes | str, content_type: str = "application/json"):
    return client.post("/states", data=body, content_type=content_type)


def test_save_get_and_short_link(client: FlaskClient) -> None:
    state = a_state(client)
    response = post(client, json.dumps(state))
    assert response.status_code == 201
    state_id, url = response.json["id"], response.json["url"]
    assert STATE_ID.fullmatch(state_id)
    assert url == f"http://localhost/s/{state_id}"
    assert response.headers["Location"].endswith(f"/states/{state_id}")

    saved = client.get(f"/states/{state_id}")
    assert saved.status_code == 200 and saved.mimetype == "application/json"
    assert saved.json == state

    link = client.get(f"/s/{state_id}")
    assert link.status_code == 302
    target, fragment = link.headers["Location"].split("#!", 1)
    assert target == "/v/main/"
    # The viewer is handed the saved state's URL (server.state_delivery: url).
    assert fragment == f"http://localhost/states/{state_id}"


def test_identical_states_share_an_id(client: FlaskClient) -> None:
    state = a_state(client)
    first = post(client, json.dumps(state)).json["id"]
    reordered = json.dumps(dict(reversed(list(state.items()))), indent=2)
    assert post(client, reordered).json["id"] == first
    changed = dict(state, position=[1.0, 2.0, 3.0])
    assert post(client, json.dumps(changed)).json["id"] != first


def test_saved_state_is_shared_by_replicas(tree: Path, states_db: str, client: FlaskClient) -> None:
    state_id = post(client, json.dumps(a_state(client))).json["id"]
    replica = server.create_app(make_config(tree, states_db)).test_client()
    assert replica.get(f"/states/{state_id}").status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(client: FlaskClient, content_type: str) -> None:
    response = post(client, json.dumps({"layers": []}), content_type)
    assert response.status_code == 415
    assert response.json["status"] == 415


def test_body_too_large_is_413(client: FlaskClient) -> None:
    state = {"layers": [], "title": "x" * MAX_BODY}
    response = post(client, json.dumps(state))
    assert response.status_code == 413
    assert response.json["status"] == 413
    # Nothing was stored under the id that state would have had.
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    assert client.get(f"/states/{state_id_for(canonical)}").status_code == 404


def test_body_of_exactly_the_limit_is_accepted(client: FlaskClient) -> None:
    empty = json.dumps({"layers": [], "pad": ""})
    body = json.dumps({"layers": [], "pad": "y" * (MAX_BODY - len(empty))})
    assert len(body) == MAX_BODY
    assert post(client, body).status_code == 201


def test_postgres_store_reconnects(app: Flask, states_db: str) -> None:
    """A dropped connection (server restart, idle timeout) costs one retry, not an error."""
    if not states_db.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    import psycopg

    store = PostgresStore(states_db)
    state_id = store.put(b'{"layers":[],"n":1}')
    with psycopg.connect(states_db, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert store.get(state_id) == b'{"layers":[],"n":1}'


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '"a string"',
        "{}",
        '{"layers": 5}',
        '{"layers": [], "position": NaN}',
        '{"layers": [], "position": Infinity}',
        '{"layers": [], "crossSectionScale": -Infinity}',
        '{"layers": [], "position": [1e999, 0, 0]}',
        '{"layers": [], "projectionScale": -1E400}',
        '{"layers": [], "title": "\\ud800"}',
        '{"layers": [], "\\udfff": 1}',
        '{"layers": [], "title": "a\\udc00b\\ud83d"}',
        '{"layers": [{"name": "a", "type": "no-such-type"}]}',
        '{"layers": [{"name": "a", "type": "image", "source": 5}]}',
        '{"layers": [], "dimensions": "x"}',
        '{"layers": [], "layout": 5}',
        '{"layers": [], "position": ["a"]}',
        "[" * 100_00 + "]" * 100_00,
        b"\xff\xfe{}",
    ],
)
def test_invalid_states_are_400(client: FlaskClient, body: str | bytes) -> None:
    response = post(client, body)
    assert response.status_code == 400, response.json
    assert response.json["status"] == 400 and response.json["message"]


def test_stored_states_are_strict_json(client: FlaskClient) -> None:
    """A surrogate pair and huge but finite numbers are fine, and come back as strict JSON."""
    body = '{"layers": [], "title": "\\ud83d\\ude00 \u00e9", "projectionScale": 1.5e308}'
    response = post(client, body)
    assert response.status_code == 201, response.json
    saved = client.get(f"/states/{response.json['id']}").data

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in a served state")

    state = json.loads(saved.decode("utf-8", errors="strict"), parse_constant=refuse)
    assert state["title"] == "\U0001f600 \u00e9"
    assert state["projectionScale"] == 1.5e308


@pytest.mark.parametrize("bad", ["short", "A" * 32, "a" * 31, "a" * 33, "0" * 32, "a" * 31 + "!"])
def test_malformed_ids_are_400(client: FlaskClient, bad: str) -> None:
    for url in (f"/states/{bad}", f"/s/{bad}"):
        response = client.get(url)
        assert response.status_code == 400
        assert response.json["status"] == 400


def test_unknown_ids_are_404(client: FlaskClient) -> None:
    unknown = state_id_for(b"never stored")
    assert client.get(f"/states/{unknown}").status_code == 404
    assert client.get(f"/s/{unknown}").status_code == 404


def test_methods(client: FlaskClient) -> None:
    assert client.get("/states").status_code == 405
    state_id = post(client, json.dumps({"layers": []})).json["id"]
    response = client.put(f"/states/{state_id}", data="{}", content_type="application/json")
    assert response.status_code == 405 and response.is_json
    assert client.delete(f"/states/{state_id}").status_code == 405


def test_short_link_redirects_only_to_the_configured_viewer(tree: Path, states_db: str) -> None:
    config = make_config(tree, states_db).replace(viewer_url="https://ng.example/")
    client = server.create_app(config).test_client()
    state_id = post(client, json.dumps({"layers": []})).json["id"]
    response = client.get(f"/s/{state_id}?next=https://evil.example", headers={"Host": "evil.x"})
    assert response.headers["Location"].split("#!", 1)[0] == "https://ng.example/"


def test_relative_sqlite_folder_is_relative_to_the_config_file(tree: Path, tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    folder.mkdir()
    config_file = folder / "site.yaml"
    config_file.write_text(f"data_root: {tree}\nserver:\n  states_db: saved\n")
    client = server.create_app(load_config(config_file)).test_client()
    state_id = post(client, json.dumps({"layers": []})).json["id"]
    store = SQLiteStore(folder / "saved" / "states.sqlite3")
    assert store.get(state_id) == b'{"layers":[]}'
