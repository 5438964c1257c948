"""View Tomogram redirects, state export, explanations, the index page, and the state cache."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from server_support import DATASET, RUN, TreeFactory, fragment_state, make_config, make_tree

import ngstate
import server
from cryoet_ng import catalogue as catalogue_module
from server.state_service import StateService
from server.validation import validate_viewer_state


@pytest.fixture(scope="module")
def source(sample_root: Path) -> Path:
    """What :func:`server_support.make_tree` copies, for tests that set up their own app."""
    return sample_root


@pytest.fixture(scope="module")
def client(make_server_tree: TreeFactory, tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    base = tmp_path_factory.mktemp("views")
    root = make_server_tree(base / "tree")
    return server.create_app(make_config(root, str(base / "states"))).test_client()


@pytest.fixture
def fresh(source: Path, tmp_path: Path) -> tuple[Flask, Path]:
    """An app over a private copy of the tree, for tests that change files."""
    root = make_tree(source, tmp_path / "tree")
    config = make_config(root, str(tmp_path / "states"))
    states = StateService(config, recheck_seconds=0.0)  # see every change at once
    return server.create_app(config, states=states), root


def source_urls(state: dict) -> list[str]:
    """Each layer's data URL (a source is a string or an object with ``url``)."""
    urls = []
    for layer in state["layers"]:
        source = layer["source"]
        urls.append(source if isinstance(source, str) else source["url"])
    return urls


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_view_redirects_to_self_hosted_viewer_with_the_state(client: FlaskClient) -> None:
    response = client.get(f"/view/{DATASET}/{RUN}")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/v/main/#!")
    state = fragment_state(location, client)
    exported = client.get(f"/state/{DATASET}/{RUN}.json").json
    assert state == exported
    validate_viewer_state(state)
    sources = source_urls(state)
    assert any(s.startswith("zarr://http://localhost/data/10000/TS_026/") for s in sources)
    assert any(s.startswith("precomputed://http://localhost/data/") for s in sources)


def test_view_hands_the_viewer_the_state_url_or_inline_json(
    source: Path, tmp_path: Path, client: FlaskClient
) -> None:
    location = client.get(f"/view/{DATASET}/{RUN}?tomogram=100").headers["Location"]
    assert location == f"/v/main/#!http://localhost/state/{DATASET}/{RUN}.json?tomogram=100"
    config = make_config(make_tree(source, tmp_path / "tree"), str(tmp_path / "states"))
    inline = server.create_app(
        config.replace(server=dataclasses.replace(config.server, state_delivery="inline"))
    ).test_client()
    location = inline.get(f"/view/{DATASET}/{RUN}").headers["Location"]
    assert location.startswith("/v/main/#!%7B")
    assert fragment_state(location) == fragment_state(
        client.get(f"/view/{DATASET}/{RUN}").headers["Location"], client
    )


def test_view_named_tomogram_equals_default(client: FlaskClient) -> None:
    default = client.get(f"/view/{DATASET}/{RUN}").headers["Location"]
    named = client.get(f"/view/{DATASET}/{RUN}?tomogram=100").headers["Location"]
    assert fragment_state(named, client) == fragment_state(default, client)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/view/99999/TS_026", 404),
        ("/view/10000/TS_999", 404),
        ("/view/10000/TS_026?tomogram=999", 404),
        ("/state/10000/TS_999.json", 404),
        ("/explain/10000/TS_026?tomogram=7", 404),
        ("/view/abc/TS_026", 400),
        ("/view/10000/TS%20026", 400),
        ("/view/10000/..", 400),
        ("/view/10000/" + "x" * 129, 400),
        ("/view/10000/TS_026?tomogram=..%2Fx", 400),
        ("/view/10000/TS_026?tomogram=1%3B2", 400),
        ("/state/10000/TS%3C026.json", 400),
        ("/explain/1e3/TS_026", 400),
    ],
)
def test_bad_and_unknown_parameters(client: FlaskClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert response.is_json
    assert response.json["status"] == status
    assert response.json["message"]


def test_wrong_method_is_405_json(client: FlaskClient) -> None:
    response = client.post(f"/view/{DATASET}/{RUN}")
    assert response.status_code == 405
    assert response.json["status"] == 405
    assert "GET" in response.headers["Allow"]


def test_unknown_path_is_404_json(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.json["error"] == "Not Found"


def test_state_export_is_an_attachment_neuroglancer_accepts(client: FlaskClient) -> None:
    response = client.get(f"/state/{DATASET}/{RUN}.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert "10000_TS_026_100_neuroglancer_state.json" in disposition
    validate_viewer_state(response.json)


def test_explanation_matches_the_state(client: FlaskClient) -> None:
    state = client.get(f"/state/{DATASET}/{RUN}.json").json
    explanation = client.get(f"/explain/{DATASET}/{RUN}").json
    assert explanation["tomogram"] == "100"
    by_name = {d["name"]: d for d in explanation["layers"]}
    assert {layer["name"] for layer in state["layers"]} == set(by_name)
    annotation_layers = [layer for layer in state["layers"] if layer["type"] != "image"]
    assert len(annotation_layers) >= 5
    for layer in annotation_layers:
        assert layer.get("visible", True) == by_name[layer["name"]]["visible"]
        assert by_name[layer["name"]]["reason"]
    assert any(not d["visible"] for d in by_name.values())


def test_configured_viewer_and_data_url(source: Path, tmp_path: Path) -> None:
    config = make_config(make_tree(source, tmp_path / "tree"), str(tmp_path / "states"))
    config = config.replace(
        viewer_url="https://viewer.example/app/#ignored", data_url="https://files.example.org"
    )
    client = server.create_app(config).test_client()
    location = client.get(f"/view/{DATASET}/{RUN}").headers["Location"]
    assert location.startswith("https://viewer.example/app/#!")
    sources = source_urls(fragment_state(location, client))
    assert len(sources) > 1
    assert all(s.split("://", 1)[1].startswith("https://files.example.org/") for s in sources)


@pytest.mark.parametrize(
    "query", ["?next=https://evil.example/", "?url=//evil.example", "?viewer=https://evil.example"]
)
def test_no_open_redirect(client: FlaskClient, query: str) -> None:
    response = client.get(f"/view/{DATASET}/{RUN}{query}", headers={"Host": "evil.example"})
    assert response.status_code == 302
    target = response.headers["Location"].split("#", 1)[0]
    assert target == "/v/main/"


def test_index_lists_runs_links_and_decisions(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.data.decode()
    for dataset, run in [("10000", "TS_026"), ("10000", "TS_027"), ("10001", "TS_100")]:
        assert f'href="/view/{dataset}/{run}"' in page
        assert f'href="/state/{dataset}/{run}.json"' in page
    explanation = client.get(f"/explain/{DATASET}/{RUN}").json
    for decision in explanation["layers"][1:]:
        assert decision["name"] in page
    assert "cytosolic ribosome" in page
    assert '<td data-label="Ground truth / prediction">prediction</td>' in page
    assert "ground truth" in page
    assert 'class="visible"' in page and 'class="hidden"' in page


def test_index_escapes_metadata(app: Flask, server_tree: Path) -> None:
    meta_path = next((server_tree / DATASET / RUN).rglob("Annotations/100/*[0-9].json"))
    meta = json.loads(meta_path.read_text())
    meta["annotation_object"]["name"] = "<script>alert(1)</script>"
    meta_path.write_text(json.dumps(meta))
    page = app.test_client().get("/").data.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_state_cache_hits_and_rebuilds_on_metadata_change(
    fresh: tuple[Flask, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, root = fresh
    calls = []
    real = ngstate.build_state
    monkeypatch.setattr(ngstate, "build_state", lambda *a: calls.append(a) or real(*a))
    client = app.test_client()
    url = f"/state/{DATASET}/{RUN}.json"
    first = client.get(url).json
    assert client.get(url).json == first
    assert len(calls) == 1

    meta_path = next((root / DATASET / RUN).rglob("Annotations/101/*[0-9].json"))
    meta = json.loads(meta_path.read_text())
    meta["annotation_object"]["name"] = "renamed object"
    meta_path.write_text(json.dumps(meta))
    names = [layer["name"] for layer in client.get(url).json["layers"]]
    assert len(calls) == 2
    assert any("renamed object" in name for name in names)

    # Removing an output folder (a NeuroglancerPrecompute entry) drops its layer.
    output = next(
        p for p in meta_path.parents[2].glob("NeuroglancerPrecompute/101-*") if p.is_dir()
    )
    shutil.rmtree(output)
    names = [layer["name"] for layer in client.get(url).json["layers"]]
    assert len(calls) == 3
    assert not any("renamed object" in name for name in names)


def test_recheck_interval_trusts_a_fresh_entry(source: Path, tmp_path: Path) -> None:
    root = make_tree(source, tmp_path / "tree")
    config = make_config(root, str(tmp_path / "states"))
    states = StateService(config, recheck_seconds=3600.0)
    client = server.create_app(config, states=states).test_client()
    url = f"/state/{DATASET}/{RUN}.json"
    before = client.get(url).data
    meta_path = next((root / DATASET / RUN).rglob("Annotations/101/*[0-9].json"))
    meta = json.loads(meta_path.read_text())
    meta["annotation_object"]["name"] = "renamed object"
    meta_path.write_text(json.dumps(meta))
    assert client.get(url).data == before  # within the interval: not looked at
    states.recheck_seconds = 0.0
    assert b"renamed object" in client.get(url).data


def test_new_run_is_found_and_unknown_runs_do_not_rescan(
    fresh: tuple[Flask, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, root = fresh
    client = app.test_client()
    scans = []
    real_scan = catalogue_module.Catalogue.scan_run

    def counting_scan(*args: object, **kwargs: object) -> object:
        scans.append(args)
        return real_scan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(catalogue_module.Catalogue, "scan_run", staticmethod(counting_scan))
    for _ in range(5):
        assert client.get(f"/view/{DATASET}/TS_404").status_code == 404
        assert client.get(f"/view/{DATASET}/Images").status_code == 404
    assert len(scans) == 1  # 'Images' exists on disk: looked at once, then remembered

    shutil.copytree(root / DATASET / "TS_027", root / DATASET / "TS_028")
    response = client.get(f"/view/{DATASET}/TS_028")
    assert response.status_code == 302
    # The copied metadata still points at TS_027's zarr; the layer is named after the run.
    layers = fragment_state(response.headers["Location"], client)["layers"]
    assert [x["name"] for x in layers if x["type"] == "image"] == ["TS_028"]


def test_cli_main_runs_the_app_on_the_configured_address(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from server.commands import run_serve

    seen = {}
    monkeypatch.setattr(Flask, "run", lambda self, **kw: seen.update(kw))
    config = make_config(make_tree(source, tmp_path / "tree"), str(tmp_path / "s"), port=9123)
    no_flags = argparse.Namespace(data_root=None, host=None, port=None, out=None, list_runs=20)
    assert run_serve(no_flags, config) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 9123 and seen["threaded"]
