"""The production command line, for real: gunicorn on a free loopback port, over HTTP.

    CRYOET_NG_CONFIG=site.yaml gunicorn -c python:server.gunicorn_conf \\
        --bind 127.0.0.1:PORT server.asgi:app

including clients that try to stall it: idle connections, dripped headers, slow bodies,
slow readers and open event streams, next to which ``/healthz`` must still answer within 1 s.
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

from cryoet_ng.config import load_config

GUNICORN = Path(sys.executable).with_name("gunicorn")
SECRET = "gunicorn test secret"
MAX_BODY = 20_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(
    app_spec: str, config_file: Path, workers: int = 2, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    """Run gunicorn with the project's settings; yield its base URL; stop it."""
    port = free_port()
    command = [str(GUNICORN), "-c", "python:server.gunicorn_conf", "--bind", f"127.0.0.1:{port}"]
    # Short graceful timeout: shutdown need not wait for the client event streams we opened.
    command += ["--workers", str(workers), "--graceful-timeout", "3", *extra, app_spec]
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
    with gunicorn("server.asgi:app", site) as url:
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


def test_wsgi_factory_form(site: Path) -> None:
    """The plain WSGI app (here its factory form) still runs on threaded workers."""
    extra = ("--worker-class", "gthread")
    with gunicorn("server:create_app()", site, workers=1, extra=extra) as url:
        assert json.loads(request(url, "GET", "/healthz").read()) == {"status": "ok"}


def test_view_state_and_data_over_http(base_url: str, site: Path) -> None:
    response = request(base_url, "GET", f"/view/{DATASET}/{RUN}")
    assert response.status == 302
    location = response.getheader("Location")
    assert location.startswith("/v/main/#!")
    state = json.loads(request(base_url, "GET", f"/state/{DATASET}/{RUN}.json").read())
    host = base_url.removeprefix("http://")
    source = next(layer["source"] for layer in state["layers"] if layer["type"] == "image")
    image = source if isinstance(source, str) else source["url"]
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


def connect(base_url: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def timed_get(base_url: str, path: str) -> tuple[int, float]:
    started = time.monotonic()
    response = request(base_url, "GET", path)
    response.read()
    return response.status, time.monotonic() - started


def main_bundle_name() -> str:
    from server.services import neuroglancer_client_dir

    return next(neuroglancer_client_dir().glob("main.*.js")).name


def test_large_answer_arrives_whole(base_url: str, site: Path) -> None:
    """An answer of several batches of the front's pool (the 1.2 MB client bundle) arrives
    whole, with the length it announces, as Flask produces it."""
    from server.app import create_app
    from server.front import BATCH_BYTES

    path = f"/v/main/{main_bundle_name()}"
    response = request(base_url, "GET", path)
    body = response.read()
    assert response.status == 200
    assert len(body) == int(response.getheader("Content-Length")) > 3 * BATCH_BYTES
    config = load_config(site)
    assert body == create_app(config).test_client().get(path).data


def test_slow_and_idle_clients_do_not_stall_others(base_url: str) -> None:
    """64 idle connections, 64 dripping their headers, 64 kept-alive idle ones, 64 event
    streams, 16 slow bodies and 16 readers that read nothing: /healthz still within 1 s."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    with ExitStack() as stack:

        def opened() -> socket.socket:
            sock = connect(base_url)
            stack.callback(sock.close)
            return sock

        idle = [opened() for _ in range(64)]
        dripping = [opened() for _ in range(64)]
        for sock in dripping:
            sock.sendall(head)
        for _ in range(64):
            kept = opened()
            kept.sendall(head + b"\r\n")
            assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        for _ in range(64):
            opened().sendall(b"GET /events/main HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(16):
            post = b"POST /states HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            opened().sendall(post + b"Content-Length: 1000\r\n\r\n{")
        bundle = f"GET /v/main/{main_bundle_name()} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for _ in range(16):  # large answers (1.2 MB each) nobody reads
            sock = opened()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(bundle * 8)
        assert len(idle) == 64
        for round_ in range(3):
            for sock in dripping:  # one more header line each: still no complete head
                sock.sendall(b"X-Slow: %d\r\n" % round_)
            status, seconds = timed_get(base_url, "/healthz")
            assert status == 200 and seconds < 1.0, seconds
            status, seconds = timed_get(base_url, f"/state/{DATASET}/{RUN}.json")
            assert status == 200 and seconds < 1.0, seconds
            time.sleep(0.3)


def test_idle_and_dripping_connections_are_closed(base_url: str) -> None:
    from server.gunicorn_worker import HEAD_SECONDS

    idle = connect(base_url)
    dripping = connect(base_url)
    started = time.monotonic()
    try:
        dripping.sendall(b"GET /healthz HTTP/1.1\r\n")
        dripping.settimeout(0.5)
        closed = None
        while closed is None and time.monotonic() - started < HEAD_SECONDS + 5:
            try:
                if dripping.recv(100) == b"":
                    closed = time.monotonic() - started
            except TimeoutError:
                dripping.sendall(b"X: y\r\n")
        idle.settimeout(5)
        assert idle.recv(100) == b""  # closed by then too
        assert closed is not None and HEAD_SECONDS - 1 <= closed <= HEAD_SECONDS + 5, closed
    finally:
        idle.close()
        dripping.close()


def test_slow_body_is_answered_after_it_arrives(base_url: str) -> None:
    """A body sent in pieces is read by the loop, then handed to Flask whole."""
    body = json.dumps({"layers": [], "position": [4, 5, 6]}).encode()
    sock = connect(base_url)
    try:
        head = b"POST /states HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 7):
            sock.sendall(body[i : i + 7])
            time.sleep(0.05)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
    finally:
        sock.close()
