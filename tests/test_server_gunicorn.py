"""The production command line, for real: gunicorn on a free loopback port, over HTTP.

    CRYOET_NG_CONFIG=site.yaml gunicorn -c python:server.gunicorn_conf \\
        --bind 127.0.0.1:PORT server.wsgi:app
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from server_support import DATASET, RUN, SHARD_BYTES, TreeFactory

GUNICORN = Path(sys.executable).with_name("gunicorn")
SECRET = "gunicorn test secret"
MAX_BODY = 20_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(app_spec: str, config_file: Path, workers: int = 2) -> Iterator[str]:
    """Run gunicorn with the project's settings; yield its base URL; stop it."""
    port = free_port()
    command = [str(GUNICORN), "-c", "python:server.gunicorn_conf", "--bind", f"127.0.0.1:{port}"]
    # Short graceful timeout: shutdown need not wait for the client event streams we opened.
    command += ["--workers", str(workers), "--graceful-timeout", "3", app_spec]
    env = dict(os.environ, CRYOET_NG_CONFIG=str(config_file))
    log = config_file.with_suffix(f".{port}.log")
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def site(make_server_tree: TreeFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("gunicorn")
    root = make_server_tree(base / "tree")
    (base / "secret.txt").write_text(SECRET)
    config_file = base / "site.yaml"
    config_file.write_text(
        f"data_root: {root}\nserver:\n  states_db: states\n  max_body_bytes: {MAX_BODY}\n"
    )
    return config_file


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    with gunicorn("server.wsgi:app", site) as url:
        yield url


def request(base_url: str, method: str, path: str, **kwargs: object) -> http.client.HTTPResponse:
    """A raw request: http.client sends the path exactly as given (no normalisation)."""
    host = base_url.removeprefix("http://")
    conn = http.client.HTTPConnection(host, timeout=10)
    conn.request(method, path, **kwargs)  # type: ignore[arg-type]
    return conn.getresponse()


def test_healthz(base_url: str) -> None:
    response = request(base_url, "GET", "/healthz")
    assert response.status == 200
    assert json.loads(response.read()) == {"status": "ok"}


def test_factory_form(site: Path) -> None:
    with gunicorn("server:create_app()", site, workers=1) as url:
        assert json.loads(request(url, "GET", "/healthz").read()) == {"status": "ok"}


def test_view_state_and_data_over_http(base_url: str, site: Path) -> None:
    response = request(base_url, "GET", f"/view/{DATASET}/{RUN}")
    assert response.status == 302
    location = response.getheader("Location")
    assert location.startswith("/v/main/#!")
    state = json.loads(request(base_url, "GET", f"/state/{DATASET}/{RUN}.json").read())
    host = base_url.removeprefix("http://")
    image = state["layers"][0]["source"]
    assert image.startswith(f"zarr://http://{host}/data/")
    # The viewer's own fetch of the tomogram's OME-Zarr metadata.
    zattrs = image.removeprefix(f"zarr://{base_url}") + "/.zattrs"
    response = request(base_url, "GET", zattrs)
    assert response.status == 200
    assert "multiscales" in json.loads(response.read())
    assert request(base_url, "GET", "/v/main/").status == 200


def test_range_request_over_http(base_url: str, site: Path) -> None:
    root = site.parent / "tree"
    shard = next(root.rglob("0.shard")).relative_to(root).as_posix()
    response = request(base_url, "GET", f"/data/{shard}", headers={"Range": "bytes=100-163"})
    assert response.status == 206
    assert response.read() == SHARD_BYTES[100:164]


@pytest.mark.parametrize(
    "path",
    [
        "/data/../secret.txt",
        "/data/10000/../../secret.txt",
        "/data/%2e%2e/secret.txt",
        "/data/10000%2F..%2F..%2Fsecret.txt",
        "/data/..%5csecret.txt",
        "/data//" + "tmp",
    ],
)
def test_raw_traversal_is_refused(base_url: str, path: str) -> None:
    response = request(base_url, "GET", path)
    body = response.read()
    assert response.status in (400, 404)
    assert SECRET.encode() not in body


def test_saved_state_round_trip(base_url: str, site: Path) -> None:
    body = json.dumps({"layers": [], "position": [1, 2, 3]})
    headers = {"Content-Type": "application/json"}
    response = request(base_url, "POST", "/states", body=body, headers=headers)
    assert response.status == 201
    saved = json.loads(response.read())
    assert saved["url"].startswith(base_url + "/s/")
    again = request(base_url, "GET", f"/states/{saved['id']}")
    assert json.loads(again.read()) == json.loads(body)
    # Relative states_db: beside the configuration file.
    assert (site.parent / "states" / "states.sqlite3").is_file()


def test_oversized_chunked_body_is_413(base_url: str) -> None:
    """A chunked body has no Content-Length; the limit must still hold."""
    chunks = (b'{"layers": [], "pad": "' + b"x" * 5000 for _ in range(10))
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    response = request(
        base_url, "POST", "/states", body=chunks, headers=headers, encode_chunked=True
    )
    assert response.status == 413


def test_event_streams_do_not_block_other_requests(base_url: str) -> None:
    """With threaded workers, open client event streams leave room for other requests."""
    with ExitStack() as stack:
        for _ in range(6):
            response = request(base_url, "GET", "/events/main?c=1&gc=")
            stack.callback(response.close)
            assert response.status == 200
            assert response.getheader("Content-Type").startswith("text/event-stream")
            assert response.readline().startswith(b"retry:")
        started = time.monotonic()
        assert request(base_url, "GET", "/healthz").status == 200
        assert time.monotonic() - started < 2.0
