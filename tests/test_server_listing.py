"""The front page, dataset pages and JSON listings at portal scale: datasets with counts,
paged; a dataset's runs, paged; search by dataset id, run name and object name; the same
listings with and without the tree's index."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from server_support import make_config

import server
from cryoet_ng.catalogue import Catalogue
from cryoet_ng_cli import main as cli
from server import index as index_module


@pytest.fixture
def tree(server_tree: Path) -> Path:
    assert cli(["index", str(server_tree), "--out", str(server_tree)]) == 0
    return server_tree


def portal_app(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """The app as a 30,000-run tree shows it: no runs on the front page, small pages."""
    monkeypatch.setattr(index_module, "INLINE_RUNS", 0)
    monkeypatch.setattr(index_module, "DATASETS_PER_PAGE", 1)
    monkeypatch.setattr(index_module, "RUNS_PER_PAGE", 1)
    return server.create_app(make_config(root, str(tmp_path / "states")))


def dataset_links(page: str) -> list[str]:
    return re.findall(r'<tr class="dataset">\s*<td><a href="/datasets/(\d+)', page)


def run_sections(page: str) -> list[str]:
    return re.findall(r'<section class="run" id="run-(\d+-[^"]+)"', page)


def expected_counts(root: Path) -> dict[str, tuple[int, int, int]]:
    catalogue = Catalogue.scan(root)
    return {
        d.id: (
            len(d.runs),
            sum(len(r.tomograms) for r in d.runs.values()),
            sum(len(r.annotations) for r in d.runs.values()),
        )
        for d in catalogue.datasets.values()
    }


def test_front_page_lists_datasets_with_counts_in_pages(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = portal_app(tree, tmp_path, monkeypatch).test_client()
    counts = expected_counts(tree)
    seen = []
    for number in (1, 2):
        page = client.get(f"/?page={number}").data.decode()
        assert f"page {number} of 2 (2)" in page and run_sections(page) == []
        (dataset_id,) = dataset_links(page)
        seen.append(dataset_id)
        cells = re.findall(r'<td class="n">([^<]*)</td>', page)
        assert tuple(int(c.replace(",", "")) for c in cells) == counts[dataset_id]
    assert seen == sorted(counts)
    assert dataset_links(client.get("/?page=99").data.decode()) == [seen[-1]]  # clamped
    assert client.get("/?page=x").status_code == 400


def test_search_by_dataset_run_and_object(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = portal_app(tree, tmp_path, monkeypatch).test_client()
    monkeypatch.setattr(index_module, "DATASETS_PER_PAGE", 50)
    catalogue = Catalogue.scan(tree)

    def found(query: str) -> list[str]:
        return dataset_links(client.get("/", query_string={"q": query}).data.decode())

    assert found("10001") == ["10001"]
    assert found("ts_100") == ["10001"]  # run name, any case
    with_object = sorted(
        d.id
        for d in catalogue.datasets.values()
        if any("membrane" in a.object_name.lower() for r in d.runs.values() for a in r.annotations)
    )
    assert with_object and found("Membrane") == with_object
    assert found("no such thing") == []
    assert "Nothing matches" in client.get("/?q=no+such+thing").data.decode()

    # On a dataset page the same search keeps the runs holding that object.
    dataset_id = with_object[0]
    runs = sorted(
        f"{dataset_id}-{r.name}"
        for r in catalogue.datasets[dataset_id].runs.values()
        if any("membrane" in a.object_name.lower() for a in r.annotations)
    )
    monkeypatch.setattr(index_module, "RUNS_PER_PAGE", 20)
    page = client.get(f"/datasets/{dataset_id}?q=membrane").data.decode()
    assert sorted(run_sections(page)) == runs


def test_dataset_page_lists_its_runs_in_pages(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = portal_app(tree, tmp_path, monkeypatch).test_client()
    names = sorted(Catalogue.scan(tree).datasets["10000"].runs)
    assert len(names) >= 2
    shown = []
    for number in range(1, len(names) + 1):
        page = client.get(f"/datasets/10000?page={number}").data.decode()
        assert f"page {number} of {len(names)}" in page
        (section,) = run_sections(page)
        shown.append(section.split("-", 1)[1])
        assert f'href="/view/10000/{shown[-1]}"' in page  # the run row macro, with its links
    assert shown == names
    assert client.get("/datasets/99999").status_code == 404
    assert client.get("/datasets/abc").status_code == 400


def test_json_listings_for_programs(tree: Path, tmp_path: Path) -> None:
    client: FlaskClient = server.create_app(make_config(tree, str(tmp_path / "s"))).test_client()
    counts = expected_counts(tree)
    body = client.get("/api/datasets").json
    assert body["total"] == len(counts) and body["pages"] == 1
    got = {d["id"]: (d["runs"], d["tomograms"], d["annotations"]) for d in body["items"]}
    assert got == counts
    runs = client.get(body["items"][0]["url"]).json
    assert runs["id"] == body["items"][0]["id"] and runs["total"] == len(runs["items"])
    view = runs["items"][0]["view"]
    assert client.get(view).status_code == 302
    assert client.get("/api/datasets", query_string={"q": "ts_100"}).json["total"] == 1
    assert client.get("/api/datasets/12345").status_code == 404


def test_without_an_index_names_come_from_listings(
    server_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = portal_app(server_tree, tmp_path, monkeypatch).test_client()
    page = client.get("/").data.decode()
    assert dataset_links(page) == ["10000"] and '<td class="n">?</td>' in page
    body = client.get("/api/datasets").json
    assert body["items"][0]["tomograms"] is None
    names = sorted(Catalogue.scan(server_tree).datasets["10000"].runs)
    listed = [r["name"] for r in client.get("/api/datasets/10000").json["items"]]
    assert listed == names  # folders that are not runs (Images/) left out
    assert client.get("/?q=ts_100").status_code == 200
