"""Real servers for the storage tests: moto's S3 server, a static HTTP server for a tree
folder, and a forwarding proxy in front of moto that can fail or stall requests (moto
itself cannot throttle), all started by the tests on loopback ports."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from cryoet_ng.store import forget_stores
from precompute.locks import LOCK_FOLDER

# (method, path) -> None to forward, or (status, body) to answer, or "hang".
Policy = Callable[[str, str], Any]


def s3_environment(monkeypatch: pytest.MonkeyPatch, endpoint: str, signed: bool = True) -> None:
    values = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    values["AWS_ENDPOINT_URL"] = endpoint
    if signed:
        values |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    else:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    forget_stores()


def upload(client: Any, bucket: str, folder: Path, prefix: str) -> int:
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            body = path.read_bytes()
            client.put_object(Bucket=bucket, Key=key, Body=body, ACL="public-read")
            count += 1
    return count


def empty_bucket(client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


def remote_hashes(client: Any, bucket: str, prefix: str) -> dict[str, str]:
    hashes = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            hashes[obj["Key"][len(prefix) + 1 :]] = hashlib.sha256(body).hexdigest()
    return hashes


def local_hashes(folder: Path) -> dict[str, str]:
    """Every file but the batch locks (a local output root's only, precompute.locks)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.relative_to(folder).as_posix().startswith(LOCK_FOLDER)
    }


def outputs(hashes: dict[str, str]) -> dict[str, str]:
    """Precompute outputs only: the index folder holds store-specific signatures."""
    return {k: v for k, v in hashes.items() if not k.startswith("cryoet-ng-index/")}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def http_tree(folder: Path) -> Iterator[str]:
    """Serve ``folder`` read-only over HTTP (GET/HEAD, no listing API); yields the URL."""
    handler = partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def faulty_proxy(upstream: str, policy: Policy) -> Iterator[tuple[str, list[str]]]:
    """A proxy to ``upstream`` that asks ``policy`` per request; yields (URL, request log)."""
    host, port = upstream.removeprefix("http://").split(":")
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            seen.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            verdict = policy(self.command, self.path)
            if verdict == "hang":
                time.sleep(30)
                return
            if verdict is not None:
                status, text = verdict
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)
                return
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            head = self.command == "HEAD"
            for name, value in answer.getheaders():
                skip = ("transfer-encoding", "connection") + (() if head else ("content-length",))
                if name.lower() not in skip:
                    self.send_header(name, value)
            if not head:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
