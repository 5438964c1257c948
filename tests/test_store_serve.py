"""The View Tomogram service, ``state``, ``export-states`` and ``validate`` over a tree in a
bucket (moto's S3 server) and over an https:// tree with its published index: the same
states as the local tree, with the browser sent to the store's own URLs."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_support import DATASET, RUN, TreeFactory, fragment_state, make_config
from store_support import http_tree, remote_hashes, s3_buckets, upload

import server
from cryoet_ng import index
from cryoet_ng.config import with_overrides
from cryoet_ng.store import open_store
from cryoet_ng_cli import main as cli

boto3 = pytest.importorskip("boto3")

BUCKET = "serve-data"
LOCAL_DATA = "http://localhost/data"


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with s3_buckets(s3_endpoint, monkeypatch, BUCKET) as client:
        yield client


@pytest.fixture
def bucket_tree(
    s3: Any, make_server_tree: TreeFactory, tmp_path: Path, s3_endpoint: str
) -> tuple[Path, str, str]:
    """(local tree with stand-in outputs, its copy in the bucket, the bucket's public URL)."""
    root = make_server_tree(tmp_path / "tree")
    upload(s3, BUCKET, root, "tree")
    return root, f"s3://{BUCKET}/tree", f"{s3_endpoint}/{BUCKET}/tree"


def same_state(here: dict[str, Any], there: dict[str, Any], local: str, public: str) -> bool:
    """The local tree's state equals the store tree's once ``local`` reads ``public``
    (contrast included: without a summary both read the MRC twin's header)."""
    moved = json.loads(json.dumps(here).replace(local, public))
    return bool(moved == there)


def get_view(client: Any, dataset_id: str, run_name: str) -> dict[str, Any]:
    response = client.get(f"/view/{dataset_id}/{run_name}")
    assert response.status_code == 302, response.data
    return fragment_state(response.headers["Location"], client)


def urls(state: dict[str, Any]) -> list[str]:
    sources = [layer["source"] for layer in state["layers"]]
    return [s if isinstance(s, str) else s["url"] for s in sources]


@pytest.mark.parametrize("with_index", [False, True], ids=["listing", "index"])
def test_server_serves_view_tomogram_from_the_bucket_tree(
    bucket_tree: tuple[Path, str, str], tmp_path: Path, with_index: bool
) -> None:
    local_root, url, public = bucket_tree
    if with_index:
        assert cli(["index", url]) == 0
    local_app = server.create_app(make_config(local_root, str(tmp_path / "s1")))
    config = with_overrides(make_config(local_root, str(tmp_path / "s2")), {"data_root": url})
    app = server.create_app(config)
    store = open_store(url)
    before = dict(store.requests)
    client, local_client = app.test_client(), local_app.test_client()
    # Nothing of the tree is read before a request names a run (only the index's top file).
    assert store.requests.get("read", 0) - before.get("read", 0) == 0
    for dataset_id, run_name in ((DATASET, RUN), ("10000", "TS_027"), ("10001", "TS_100")):
        there = get_view(client, dataset_id, run_name)
        here = get_view(local_client, dataset_id, run_name)
        # The same state, with the browser sent to the bucket instead of this server.
        assert same_state(here, there, LOCAL_DATA, public)
        assert all(public in u for u in urls(there)) and urls(there)
    # The URLs in the state are the bucket's objects, readable without credentials.
    state = get_view(client, DATASET, RUN)
    zarr = next(u for u in urls(state) if u.startswith("zarr://"))
    with urllib.request.urlopen(zarr[len("zarr://") :] + "/.zattrs") as answer:
        assert "multiscales" in json.loads(answer.read())
    precomputed = next(u for u in urls(state) if u.startswith("precomputed://"))
    with urllib.request.urlopen(precomputed[len("precomputed://") :] + "/info") as answer:
        assert json.loads(answer.read())["@type"]
    assert client.get(f"/view/{DATASET}/TS_404").status_code == 404
    page = client.get("/")
    assert page.status_code == 200 and f"/view/{DATASET}/{RUN}".encode() in page.data


def test_state_and_export_states_read_a_bucket_tree(
    bucket_tree: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], s3: Any
) -> None:
    local_root, url, public = bucket_tree
    assert cli(["state", str(local_root), DATASET, RUN]) == 0
    here = json.loads(capsys.readouterr().out)
    assert cli(["state", url, DATASET, RUN]) == 0
    there = json.loads(capsys.readouterr().out)
    # The same state, its sources on the bucket (the local one: the default /data URL).
    assert same_state(here, there, "http://127.0.0.1:8000/data", public)
    assert all(public in u for u in urls(there))
    assert cli(["state", url, DATASET, "TS_404"]) == 2

    assert cli(["export-states", str(local_root), "--local-urls"]) == 0
    assert cli(["export-states", url]) == 0
    written = {
        k: v for k, v in remote_hashes(s3, BUCKET, "tree").items() if k.endswith("_config.json")
    }
    local = {
        p.relative_to(local_root).as_posix(): p.read_bytes()
        for p in local_root.rglob("*-neuroglancer_config.json")
    }
    assert set(written) == set(local) and len(local) >= 3
    for key, data in local.items():
        body = s3.get_object(Bucket=BUCKET, Key=f"tree/{key}")["Body"].read()
        assert same_state(json.loads(data), json.loads(body), "http://127.0.0.1:8000/data", public)


def test_validate_reads_a_bucket_output_root(
    s3: Any, sample_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli(["precompute", str(sample_copy), "--out", str(out), "--workers", "1"]) == 0
    upload(s3, BUCKET, out, "out")
    assert cli(["validate", str(out)]) == 0
    local_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert cli(["validate", f"s3://{BUCKET}/out"]) == 0
    remote_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert remote_line.split(" outputs")[0] == local_line.split(" outputs")[0]
    # A damaged output in the bucket is reported with its URL.
    key = next(k for k in remote_hashes(s3, BUCKET, "out") if k.endswith("_point/info"))
    s3.put_object(Bucket=BUCKET, Key=f"out/{key}", Body=b"{not json")
    assert cli(["validate", f"s3://{BUCKET}/out"]) == 1
    assert f"s3://{BUCKET}/out/{key.rsplit('/', 1)[0]}" in capsys.readouterr().out


def test_https_tree_is_served_from_its_published_index(
    make_server_tree: TreeFactory, tmp_path: Path
) -> None:
    root = make_server_tree(tmp_path / "tree")
    assert cli(["index", str(root), "--out", str(root)]) == 0
    local_client = server.create_app(make_config(root, str(tmp_path / "s1"))).test_client()
    with http_tree(root) as url:
        config = with_overrides(make_config(root, str(tmp_path / "s2")), {"data_root": url})
        client = server.create_app(config).test_client()
        there = get_view(client, DATASET, RUN)
        here = get_view(local_client, DATASET, RUN)
        assert same_state(here, there, LOCAL_DATA, url)
        listing = client.get("/").data
        assert f"/view/{DATASET}/{RUN}".encode() in listing
    top = index.TreeIndex.load(open_store(root))
    assert top is not None and top.top["datasets"][DATASET]["objects"]


def test_mrc_header_contrast_is_read_from_the_bucket_with_one_ranged_request(
    bucket_tree: tuple[Path, str, str],
) -> None:
    """A tree on a store without summaries gets the MRC twin's header limits, as a local
    tree does: one ranged GET per file, then kept."""
    from cryoet_ng.store import Location
    from ngstate.contrast import _remote_header, from_mrc_header

    _remote_header.cache_clear()  # earlier tests read the same bucket's headers
    local_root, url, _ = bucket_tree
    mrc = next(local_root.rglob("*.mrc"))
    here = from_mrc_header(mrc)
    assert here is not None and here.source == "MRC header"
    there = Location(url, mrc.relative_to(local_root).as_posix())
    before = there.store.requests["read"]
    assert from_mrc_header(there) == here
    assert from_mrc_header(there) == here
    assert there.store.requests["read"] - before == 1
    assert from_mrc_header(Location(url, "no/such.mrc")) is None
