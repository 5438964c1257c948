"""The index page says what every layer is, and what is missing or stale (issue 15); a
person following a bad View Tomogram link gets a page, not JSON."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.failures import FailureRecord, write_failure
from cryoet_ng.layout import Layout, failure_path, summary_path

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def rows_of(page: str) -> dict[str, str]:
    """Layer name -> the text of its table row (tags stripped, entities decoded)."""
    rows = {}
    for row in re.findall(r'<tr class="layer[^"]*">(.*?)</tr>', page, re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in row.split("</td>")]
        rows[cells[0].removesuffix(" stale").strip()] = " | ".join(cells)
    return rows


def output(root: Path, dataset: str, run: str, object_name: str, shape: str) -> Path:
    found = Catalogue.scan(root).run(dataset, run)
    assert found is not None
    annotation = next(a for a in found.annotations if a.object_name == object_name)
    return Layout(root).annotation_output(found, annotation, shape)


def test_every_layer_says_what_it_is(app: Flask) -> None:
    page = app.test_client().get("/").data.decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    rows = rows_of(page)
    truth = rows["100 cytosolic ribosome · ground truth · manual"]
    # visible, status, curator-recommended (its own column), method, authors, count,
    # deposition, spacing, why
    assert truth.split(" | ")[1:9] == [
        "yes",
        "ground truth",
        "yes",
        "manual · IMOD",
        "Ada Lamella, Ben Tiltseries",
        "10 picks",  # placeholder outputs have no summary: the metadata's object_count
        "10300",
        "13.48 Å",
    ]
    prediction = rows["101 cytosolic ribosome · prediction · pyTOM + DeePiCt"].split(" | ")
    assert prediction[2:8] == [
        "prediction",
        "no",
        "automated · pyTOM + DeePiCt",
        "Cy Predictor",
        "10 picks",
        "10301",
    ]
    assert "13.48 Å" in prediction and "hidden: author's" in prediction[9]
    microtubule = rows["100 microtubule · ground truth · manual"].split(" | ")
    assert microtubule[8] == "26.96 Å"
    # Curated or not, per run.
    assert "curated: 5 of 9 annotation files flagged" in page
    assert "uncurated: none of the 2 annotation files" in page


def test_key_photo_thumbnail_is_shown_and_served(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/").data.decode()
    sources = re.findall(r'<img src="([^"]+)" alt="key photo of run (\w+)"', page)
    assert {run for _, run in sources} == {"TS_026", "TS_027", "TS_100"}
    for src, _ in sources:
        assert src.endswith("/key-photo-thumbnail.png") and "/data/" in src
        response = client.get(urlsplit(src).path)
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.data.startswith(b"\x89PNG")


def test_missing_and_stale_layers_are_listed_with_the_reason(app: Flask, server_tree: Path) -> None:
    # Stale: TS_026's ground-truth ribosomes have an output, and a failed re-run of its input.
    ribo = output(server_tree, "10000", "TS_026", "cytosolic ribosome", "Point")
    record = FailureRecord("x", "10000/TS_026/a.ndjson", "coordinate leaves the tomogram", 12)
    write_failure(failure_path(summary_path(ribo)), record)
    # Failed: TS_100's nucleosome picks were never converted, and their precompute failed.
    nuc = output(server_tree, "10001", "TS_100", "nucleosome", "Point")
    write_failure(failure_path(summary_path(nuc)), FailureRecord("y", "b.ndjson", "not JSON", 3))
    page = app.test_client().get("/").data.decode()
    row = rows_of(page)["100 cytosolic ribosome · ground truth · manual"]
    assert "stale" in row.split(" | ")[0]
    assert "stale: the last precompute of its input failed" in row
    assert "10000/TS_026/a.ndjson line 12: coordinate leaves the tomogram" in row
    left_out = [html.unescape(re.sub(r"<[^>]+>", "", li)) for li in re.findall(
        r'<li class="left-out">(.*?)</li>', page, re.S)]  # fmt: skip
    [failed] = [item for item in left_out if "nucleosome" in item]
    assert "failed" in failed and "b.ndjson line 3: not JSON" in failed
    [missing] = [item for item in left_out if "cytosolic ribosome" in item]
    assert "missing" in missing and "precompute not run?" in missing


def test_view_error_for_a_person_names_what_and_links_back(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/view/10000/TS_999", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 404 and response.mimetype == "text/html"
    page = response.data.decode()
    assert "no run &#39;TS_999&#39; in dataset 10000" in page
    assert '<a href="/">' in page and 'name="viewport"' in page
    response = client.get("/view/10000/TS_026?tomogram=999", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 404 and "unknown tomogram" in response.data.decode()
    bad = client.get("/view/10000/..%20x", headers={"Accept": BROWSER_ACCEPT})
    assert bad.status_code == 400 and bad.mimetype == "text/html"
    # Programs (no Accept, or JSON) keep the JSON error.
    assert client.get("/view/10000/TS_999").json["status"] == 404
    as_json = client.get("/view/10000/TS_999", headers={"Accept": "application/json"})
    assert as_json.json["message"] == "no run 'TS_999' in dataset 10000"
