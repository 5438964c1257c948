"""Portal scale, the server: gunicorn over a metadata-only tree of 100 datasets x 300 runs.

    .venv/bin/python -m benchmarks.scale serve [-- --datasets 100 --runs 300 --views 20]

The ``serve`` section of :mod:`benchmarks.scale`. The tree is :mod:`benchmarks.scale_tree`'s
(one tomogram and three annotations per run, metadata only, on tmpfs), indexed with
``cryoet-ng index``; a second tree of 1 dataset x 3 runs is served the same way, so a
``/view`` on 30,000 runs can be compared with one on 3. Each server is gunicorn started as
documented (``-c python:server.gunicorn_conf server.asgi:app``) with one worker (memory per
worker is the figure), this branch's code and the landed main's (``git archive main``, same
interpreter and libraries) in the same run:

* start-up: from starting gunicorn to the first ``/healthz`` answer;
* ``/view`` of ``--views`` random runs, cold (the first request naming each) and warm (the
  same again), medians;
* ``/`` and one dataset page (ours; main has none): bytes and seconds (main's ``/`` builds
  a state for every run: it is given ``--page-timeout`` seconds);
* resident memory of the worker after all of it, and its peak (``VmHWM``).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from benchmarks.scale_tree import generate

HERE = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str, timeout: float) -> tuple[float, int, int]:
    """(seconds, status, body bytes) of one GET; redirects are not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    start = time.perf_counter()
    try:
        with opener.open(url, timeout=timeout) as answer:
            body = answer.read()
            status = answer.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    return time.perf_counter() - start, status, len(body)


class Server:
    """gunicorn with one worker over ``root``, from the code in ``source`` (a checkout)."""

    def __init__(self, source: Path, root: Path, work: Path) -> None:
        self.port = free_port()
        config = work / f"config-{self.port}.yaml"
        config.write_text(f"data_root: {root}\nserver:\n  states_db: {work / 'states'}\n")
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(source),
            CRYOET_NG_CONFIG=str(config),
            CRYOET_NG_WORKERS="1",
            CRYOET_NG_BIND=f"127.0.0.1:{self.port}",
        )
        gunicorn = Path(sys.executable).with_name("gunicorn")
        argv = [str(gunicorn), "-c", "python:server.gunicorn_conf", "server.asgi:app"]
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float) -> float:
        """Seconds until /healthz answers."""
        while time.perf_counter() - self.start < timeout:
            try:
                if fetch(f"{self.base}/healthz", 5)[1] == 200:
                    return time.perf_counter() - self.start
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited")
            time.sleep(0.05)
        raise TimeoutError(f"no answer within {timeout} s")

    def worker_memory(self) -> tuple[float, float]:
        """(RSS, peak RSS) of the worker in MB."""
        workers = psutil.Process(self.proc.pid).children()
        worker = workers[0]
        rss = worker.memory_info().rss / 1e6
        peak = rss
        with open(f"/proc/{worker.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024 / 1e6
        return rss, peak

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(
    name: str, source: Path, root: Path, work: Path, runs: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    server = Server(source, root, work)
    try:
        row: dict[str, Any] = {"name": name}
        try:
            row["startup"] = server.wait(args.startup_timeout)
        except TimeoutError:
            row["startup"] = None  # reported as "> timeout"
            row["rss"], row["peak"] = server.worker_memory()
            return row
        cold, warm = [], []
        for key in runs:
            seconds, status, _ = fetch(f"{server.base}/view/{key}", args.page_timeout)
            assert status == 302, (key, status)
            cold.append(seconds)
        for key in runs:
            warm.append(fetch(f"{server.base}/view/{key}", args.page_timeout)[0])
        row["cold_ms"] = statistics.median(cold) * 1e3
        row["cold_max_ms"] = max(cold) * 1e3
        row["warm_ms"] = statistics.median(warm) * 1e3
        dataset = runs[0].split("/")[0]
        for label, path in (("index", "/"), ("dataset", f"/datasets/{dataset}")):
            try:
                timeout = args.page_timeout if "ours" in name else args.main_page_timeout
                seconds, status, size = fetch(server.base + path, timeout)
                row[label] = (seconds, size) if status == 200 else None
            except (TimeoutError, OSError):
                row[label] = "timeout"
        row["rss"], row["peak"] = server.worker_memory()
        return row
    finally:
        server.stop()


def main_source(folder: Path) -> Path:
    """The landed main's code (``git archive main``)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "main"], cwd=HERE, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def page(value: Any) -> str:
    if value is None:
        return "n/a"
    if value == "timeout":
        return "timed out"
    seconds, size = value
    return f"{seconds:.3f} s, {size / 1e3:.1f} KB"


HEADER = (
    "| server | start-up s | /view cold ms (median, max) | /view warm ms | `/` | dataset page "
    "| worker RSS MB | peak MB |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def line(r: dict[str, Any], args: argparse.Namespace) -> str:
    memory = f"{r['rss']:.0f} | {r['peak']:.0f}"
    if r["startup"] is None:
        return f"| {r['name']} | > {args.startup_timeout:.0f} (no answer) | | | | | {memory} |"
    return (
        f"| {r['name']} | {r['startup']:.2f} | {r['cold_ms']:.1f}, {r['cold_max_ms']:.1f} "
        f"| {r['warm_ms']:.2f} | {page(r['index'])} | {page(r['dataset'])} | {memory} |"
    )


def run(args: argparse.Namespace) -> None:
    reuse = args.reuse is not None
    base = (
        Path(args.reuse)
        if reuse
        else Path(tempfile.mkdtemp(prefix="cryoet-ng-serve-", dir=args.root))
    )
    try:
        big, small = base / "big", base / "small"
        if not reuse:
            generate(big, args.datasets, args.runs)
            generate(small, 1, 3)
            for tree in (big, small):
                subprocess.run(
                    [sys.executable, "-m", "cryoet_ng_cli", "index", str(tree), "--out", str(tree)],
                    check=True,
                    capture_output=True,
                )
        print(f"load average at start: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
        rng = random.Random(0)
        keys = [
            f"{10000 + rng.randrange(args.datasets)}/TS_{rng.randrange(args.runs):04d}"
            for _ in range(args.views)
        ]
        small_keys = [f"10000/TS_{i:04d}" for i in range(3)]
        total = args.datasets * args.runs
        plan = [("ours, 3 runs", HERE, small, small_keys), (f"ours, {total} runs", HERE, big, keys)]
        if not args.skip_main:
            main = base / "main"
            if not main.exists():
                main_source(main)
            plan += [
                ("main, 3 runs", main, small, small_keys),
                (f"main, {total} runs", main, big, keys),
            ]
        print("\n" + HEADER, flush=True)
        for name, source, tree, chosen in plan:  # each row printed when measured
            row = measure(name, source, tree, base, chosen, args)
            load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"{line(row, args)}  (load {load})", flush=True)
        print(f"\nload average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if not reuse and not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--views", type=int, default=20, help="random runs for /view")
    parser.add_argument("--startup-timeout", type=float, default=1800.0)
    parser.add_argument("--page-timeout", type=float, default=900.0)
    parser.add_argument(
        "--main-page-timeout", type=float, default=300.0, help="main's / builds every state"
    )
    parser.add_argument("--reuse", help="a folder of an earlier --keep run (big/, small/, main/)")
    parser.add_argument("--keep", action="store_true", help="keep the trees for --reuse")
    parser.add_argument("--skip-main", action="store_true", help="no baseline")
    parser.add_argument("--root", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
