"""``/data`` (Range, conditional requests, content types, CORS, path safety) and ``/v``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from server_support import SHARD_BYTES, TreeFactory, make_config

import server

ORIGIN = "https://viewer.example"
SECRET = "top secret outside the data root"
PRE = "10000/TS_026/Reconstructions/VoxelSpacing13.480/NeuroglancerPrecompute"


@pytest.fixture(scope="module")
def tree(make_server_tree: TreeFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("data")
    root = make_server_tree(base / "tree")
    (base / "secret.txt").write_text(SECRET)
    (base / "secret_dir").mkdir()
    (base / "secret_dir" / "inside.txt").write_text(SECRET)
    (root / "link_out.txt").symlink_to(base / "secret.txt")
    (root / "link_dir_out").symlink_to(base / "secret_dir")
    (root / "link_in.json").symlink_to(root / "10000" / "dataset_metadata.json")
    (root / "page.html").write_text("<script>alert(1)</script>")
    return root


@pytest.fixture(scope="module")
def out_root(tree: Path) -> Path:
    out = tree.parent / "outputs"
    (out / "10000" / "extra").mkdir(parents=True)
    (out / "10000" / "extra" / "only_in_outputs.json").write_text('{"from": "out_root"}')
    return out


@pytest.fixture(scope="module")
def client(tree: Path, out_root: Path) -> FlaskClient:
    config = make_config(tree, str(tree.parent / "states"), cors_origins=(ORIGIN,))
    app = server.create_app(
        config.replace(output_root=out_root),
        event_stream_seconds=0.3,
        event_heartbeat_seconds=0.1,
    )
    return app.test_client()


def shard_path(tree: Path) -> str:
    return next(p for p in (tree / PRE).rglob("0.shard")).relative_to(tree).as_posix()


def test_serves_files_with_content_types(client: FlaskClient, tree: Path) -> None:
    meta = client.get("/data/10000/dataset_metadata.json")
    assert meta.status_code == 200
    assert meta.mimetype == "application/json"
    assert meta.json == json.loads((tree / "10000" / "dataset_metadata.json").read_text())
    zarr = next((tree / "10000" / "TS_026").rglob("*.zarr"))
    zattrs = client.get(f"/data/{zarr.relative_to(tree).as_posix()}/.zattrs")
    assert zattrs.status_code == 200 and zattrs.mimetype == "application/json"
    chunk = next(p for p in (zarr / "0").rglob("*") if p.is_file() and not p.name.startswith("."))
    response = client.get(f"/data/{chunk.relative_to(tree).as_posix()}")
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    assert response.data == chunk.read_bytes()
    info = next((tree / PRE).rglob("info"))
    assert client.get(f"/data/{info.relative_to(tree).as_posix()}").mimetype == "application/json"
    shard = client.get(f"/data/{shard_path(tree)}")
    assert shard.mimetype == "application/octet-stream"


def test_html_in_the_tree_is_not_served_as_a_page(client: FlaskClient) -> None:
    response = client.get("/data/page.html")
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"


def test_range_requests(client: FlaskClient, tree: Path) -> None:
    url = f"/data/{shard_path(tree)}"
    response = client.get(url, headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.data == SHARD_BYTES[10:20]
    assert response.headers["Content-Range"] == f"bytes 10-19/{len(SHARD_BYTES)}"
    suffix = client.get(url, headers={"Range": "bytes=-5"})
    assert suffix.status_code == 206 and suffix.data == SHARD_BYTES[-5:]
    beyond = client.get(url, headers={"Range": f"bytes={len(SHARD_BYTES) + 10}-"})
    assert beyond.status_code == 416


def test_conditional_requests(client: FlaskClient) -> None:
    url = "/data/10000/dataset_metadata.json"
    first = client.get(url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    head = client.head(url)
    assert head.status_code == 200 and head.data == b""
    assert int(head.headers["Content-Length"]) == len(first.data)


def test_output_root_is_served_too(client: FlaskClient) -> None:
    response = client.get("/data/10000/extra/only_in_outputs.json")
    assert response.status_code == 200
    assert response.json == {"from": "out_root"}


def test_cors_for_configured_origins_only(client: FlaskClient) -> None:
    url = "/data/10000/dataset_metadata.json"
    allowed = client.get(url, headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Content-Range" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Origin" in allowed.headers["Vary"]
    other = client.get(url, headers={"Origin": "https://evil.example"})
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options(
        url, headers={"Origin": ORIGIN, "Access-Control-Request-Headers": "range"}
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Range" in preflight.headers["Access-Control-Allow-Headers"]


def test_no_cors_headers_when_none_configured(tree: Path, tmp_path: Path) -> None:
    client = server.create_app(make_config(tree, str(tmp_path / "s"))).test_client()
    response = client.get("/data/10000/dataset_metadata.json", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_symlink_inside_the_root_is_served(client: FlaskClient) -> None:
    assert client.get("/data/link_in.json").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/data/../secret.txt",
        "/data/10000/../../secret.txt",
        "/data/%2e%2e/secret.txt",
        "/data/%2E%2E/secret.txt",
        "/data/10000%2f..%2f..%2fsecret.txt",
        "/data/..%2fsecret.txt",
        "/data/%2fetc/passwd",
        "/data//etc/passwd",
        "/data/..\\secret.txt",
        "/data/10000/%5c..%5c..%5csecret.txt",
        "/data/10000/dataset_metadata.json%00",
        "/data/./10000/dataset_metadata.json",
        "/data/link_out.txt",
        "/data/link_dir_out/inside.txt",
        "/data/10000",
        "/data/",
        "/data/10000/",
    ],
)
def test_nothing_outside_the_root(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 404), response.status_code
    assert response.is_json
    assert SECRET.encode() not in response.data
    if "%2e" in path.lower() or "%5c" in path.lower():
        assert response.status_code == 400  # refused before any file-system lookup


def test_absolute_paths_are_refused() -> None:
    from server.paths import resolve_data_path

    root = Path("/").resolve()
    assert resolve_data_path([root], "/etc/passwd") is None
    assert resolve_data_path([root], "etc/../etc/passwd") is None
    assert resolve_data_path([root], "etc\\passwd") is None
    assert resolve_data_path([root], "etc/passwd\0") is None


def test_post_to_data_is_405(client: FlaskClient) -> None:
    response = client.post("/data/10000/dataset_metadata.json")
    assert response.status_code == 405
    assert response.is_json


# -- the self-hosted client ---------------------------------------------------------------


def test_client_index_and_bundles(client: FlaskClient) -> None:
    index = client.get("/v/main/")
    assert index.status_code == 200
    assert index.mimetype == "text/html"
    html = index.data.decode()
    scripts = [part.split('"', 1)[0] for part in html.split('src="')[1:]]
    assert scripts and all(s.endswith(".js") for s in scripts)
    for script in scripts:
        response = client.get(f"/v/main/{script}")
        assert response.status_code == 200
        assert response.mimetype in ("text/javascript", "application/javascript")
    client_dir = server.app.neuroglancer_client_dir()
    wasm = sorted(p.name for p in client_dir.glob("*.wasm"))[0]
    response = client.get(f"/v/main/{wasm}")
    assert response.status_code == 200
    assert response.mimetype == "application/wasm"
    assert response.data[:4] == b"\0asm"


def test_main_bundle_is_served_with_both_patches(client: FlaskClient) -> None:
    from server.client import BUNDLE_PATCHES

    client_dir = server.app.neuroglancer_client_dir()
    main = sorted(client_dir.glob("main.*.js"))[0]
    served = client.get(f"/v/main/{main.name}").data
    original = main.read_bytes()
    for patch in BUNDLE_PATCHES:
        assert len(patch.pattern.findall(original)) == 1, patch.name
        assert patch.pattern.search(served) is None, patch.name  # every match replaced
    assert b'connect(){return;this.status.setText("Connecting to Python server")' in served
    assert b"{localAnnotationRelationships:" in served
    assert len(served) - len(original) == len(b"return;") + len(b'=["segments"]')


@pytest.mark.parametrize(
    "path", ["/v/other/", "/v/main/../../app.py", "/v/main/%2e%2e/server.py", "/v/main/nope.js"]
)
def test_client_refuses_other_tokens_and_paths(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert b"import" not in response.data


def test_event_stream_is_empty_and_bounded(client: FlaskClient) -> None:
    response = client.get("/events/main?c=abc&gc=1")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    body = response.get_data(as_text=True)  # returns: the stream ends by itself
    events = [block for block in body.split("\n\n") if block.strip()]
    assert events and all(
        line.startswith((":", "retry:")) for block in events for line in block.splitlines()
    )
    assert client.get("/events/other").status_code == 404


def test_client_state_posts_are_declined_without_reading(client: FlaskClient) -> None:
    response = client.post("/state/main", data=b'{"s": {}}', content_type="application/json")
    assert response.status_code == 412
    assert client.post("/state/other", data=b"{}").status_code == 404


def test_missing_file_is_404_json(client: FlaskClient) -> None:
    response = client.get("/data/10000/no_such_file.json")
    assert response.status_code == 404
    assert response.json["status"] == 404
