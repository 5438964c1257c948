"""Throughput of the View Tomogram service under gunicorn, measured with wrk.

    .venv/bin/python -m benchmarks.serve [--duration 30] [--connections 64] [--models ...]

Builds a sample tree (``cryoet_ng.sample``, test size) plus a run ``10000/TS_BENCH`` with
20 annotations (the sample's full run, grown). For each worker model it starts gunicorn on a
free loopback port (``asgi``: exactly as documented, ``-c python:server.gunicorn_conf
server.asgi:app``; ``gthread``, the baseline: the threaded workers used before, with
``server.wsgi:app``), then runs wrk against ``/healthz`` (Flask + gunicorn doing nothing),
``/state/10000/TS_BENCH.json`` (a cached state, answered by the replay middleware of
``server/replay.py``) and the same URL with an ``If-None-Match`` that never matches (the
same answer, built by Flask), one after the other; last, the time of ``/healthz`` while 64
idle connections and 64 dripping their headers are held. Reports requests/s, p50/p99
latency, errors, the ratio to ``/healthz``, gunicorn's resident memory (master + workers)
before and after, and the ratio of the models.

Targets on the 2-core machine: /state >= 1000 req/s, p99 < 25 ms, zero errors, flat memory,
/healthz within 1 s beside the stalling connections. wrk runs on the same cores as gunicorn.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.config import load_config
from cryoet_ng.sample import SIZES, SampleManifest
from cryoet_ng.sample.annotations import AnnotationObject, Source, annotation_spec
from cryoet_ng.sample.builder import TreeBuilder
from cryoet_ng.sample.generate import RunPlan, generate, run_rng, write_run
from cryoet_ng.sample.outputs import ANNOTATIONS_TYPE, fill_missing_outputs
from server.app import create_app

BENCH_RUN = "TS_BENCH"
WIDTHS = (9, 8, 8, 7, 9, 12)
ANNOTATIONS = 20


@dataclass(frozen=True)
class WrkResult:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def build_tree(root: Path) -> None:
    """The test-size sample, plus run TS_BENCH: the sample's full run (TS_026's scene, same
    seed) grown to 20 annotations by curated ribosome picks labelled as other particles."""
    generate(root, size="test")
    tree = TreeBuilder(root)
    written = SampleManifest(seed=0, size="test")
    plan = RunPlan("10000", BENCH_RUN, "full")
    run, scene = write_run(tree, plan, SIZES["test"], run_rng(0, 0), written)
    picks = Source("Point", True, points=scene.ribosomes.astype(np.float64))
    for k in range(ANNOTATIONS - len(written.annotations)):
        spec = annotation_spec(
            AnnotationObject(f"GO:99{k:05d}", f"particle {k}"),
            picks,
            method_type="manual" if k % 2 == 0 else "automated",
            ground_truth=k % 2 == 0,
            curator_recommended=True,
        )
        tree.annotation(run, spec)


def precompute_or_placeholders(root: Path) -> str:
    """Run the precompute for TS_BENCH; stand in placeholder outputs for what it did not make."""
    command = [sys.executable, "-m", "cryoet_ng_cli", "precompute", str(root)]
    command += ["--datasets", "10000", "--runs", BENCH_RUN]
    done = subprocess.run(command, capture_output=True, timeout=600, check=False)
    run = Catalogue.scan(root, ["10000"]).run("10000", BENCH_RUN)
    assert run is not None
    placeholders = fill_missing_outputs(root, run, {"@type": ANNOTATIONS_TYPE})
    return f"precompute exit {done.returncode}, {placeholders} placeholder outputs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(process: psutil.Process) -> float:
    procs = [process, *process.children(recursive=True)]
    return sum(p.memory_info().rss for p in procs if p.is_running()) / 1e6


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    name: str, url: str, duration: int, connections: int, headers: tuple[str, ...] = ()
) -> WrkResult:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url]
    for header in headers:
        command += ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The latency distribution lines start with the percentile (a stats line can end in "50%").
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in match.groups())
    return WrkResult(name, rps, p50, p99, errors, total)


def wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not become healthy")


@dataclass(frozen=True)
class Model:
    """A worker model: how gunicorn is started."""

    name: str
    app_spec: str
    extra: tuple[str, ...] = ()


MODELS = {
    # The production command (server.gunicorn_conf): asyncio workers, Flask on a thread pool.
    "asgi": Model("asgi", "server.asgi:app"),
    # The model before issue 16 (baseline): threaded workers, 2 x 16 threads.
    "gthread": Model("gthread", "server.wsgi:app", ("--worker-class", "gthread")),
}
STALL_CONNECTIONS = 64
STALL_TIMEOUT = 5.0


def stalled_healthz(base: str) -> float:
    """Median seconds of 3 /healthz requests while 64 idle connections and 64 dripping
    their headers are held (STALL_TIMEOUT when no answer came in that time)."""
    host, port = base.removeprefix("http://").split(":")
    held: list[socket.socket] = []
    try:
        for _ in range(STALL_CONNECTIONS):
            held.append(socket.create_connection((host, int(port)), timeout=5))
            dripping = socket.create_connection((host, int(port)), timeout=5)
            dripping.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            held.append(dripping)
        times = []
        for _ in range(3):
            started = time.monotonic()
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=STALL_TIMEOUT) as response:
                    response.read()
                times.append(time.monotonic() - started)
            except OSError:
                times.append(STALL_TIMEOUT)
        return float(np.median(times))
    finally:
        for sock in held:
            sock.close()


@dataclass
class ModelRun:
    model: Model
    results: list[WrkResult]
    rss_start: float
    rss_end: float
    stalled: float
    load: tuple[float, float, float]


def measure(model: Model, config: Path, duration: int, connections: int) -> ModelRun:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("gunicorn")), "-c", "python:server.gunicorn_conf"]
    command += ["--bind", f"127.0.0.1:{port}", *model.extra, model.app_spec]
    env = dict(os.environ, CRYOET_NG_CONFIG=str(config))
    gunicorn = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_healthy(base, gunicorn)
        state_url = f"{base}/state/10000/{BENCH_RUN}.json"
        # Every worker builds its own cache entry on first use.
        for _ in range(20):
            urllib.request.urlopen(state_url).read()
        process = psutil.Process(gunicorn.pid)
        rss_start = rss_mb(process)
        load = os.getloadavg()
        results = [
            run_wrk("/healthz", f"{base}/healthz", duration, connections),
            run_wrk("/state", state_url, duration, connections),
            # A validator the answer never matches: the same 200, but through Flask.
            run_wrk("/state Flask", state_url, duration, connections, ('If-None-Match: "bench"',)),
        ]
        rss_end = rss_mb(process)
        stalled = stalled_healthz(base)
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=60)
    return ModelRun(model, results, rss_start, rss_end, stalled, load)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--models",
        nargs="+",
        choices=sorted(MODELS),
        default=["asgi", "gthread"],
        help="worker models to measure (default: both; gthread is the baseline)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cryoet-ng-bench-") as tmp:
        root = Path(tmp) / "tree"
        build_tree(root)
        note = precompute_or_placeholders(root)
        config = Path(tmp) / "bench.yaml"
        config.write_text(f"data_root: {root}\nserver:\n  states_db: states\n")
        state = create_app(load_config(config)).test_client().get(f"/state/10000/{BENCH_RUN}.json")
        layers = len(state.json["layers"]) if state.json else 0
        runs = [measure(MODELS[m], config, args.duration, args.connections) for m in args.models]
    print(
        f"\nserve benchmark: {args.connections} connections x {args.duration} s per endpoint, "
        f"wrk -t2 on the same {os.cpu_count()} cores"
    )
    print(f"state: run 10000/{BENCH_RUN}, {layers} layers; {note}\n")
    header = ("model", "endpoint", "req/s", "p50 ms", "p99 ms", "errors", "requests", "vs /healthz")
    print(
        f"{header[0]:<8} {header[1]:<13} "
        + " ".join(f"{h:>{w}}" for h, w in zip(header[2:], WIDTHS, strict=True))
    )
    for model_run in runs:
        baseline = model_run.results[0].requests_per_s
        for r in model_run.results:
            print(
                f"{model_run.model.name:<8} {r.name:<13} {r.requests_per_s:>9.0f} "
                f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7d} {r.requests:>9d} "
                f"{r.requests_per_s / baseline:>11.2f}x"
            )
    print()
    for model_run in runs:
        load = model_run.load
        print(
            f"{model_run.model.name}: RSS (master + workers) start {model_run.rss_start:.1f} MB, "
            f"end {model_run.rss_end:.1f} MB; /healthz beside {2 * STALL_CONNECTIONS} idle and "
            f"dripping connections: {model_run.stalled:.3f} s"
            f"{' (no answer)' if model_run.stalled >= STALL_TIMEOUT else ''}; "
            f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
    if len(runs) > 1:
        for endpoint in range(3):
            names = " / ".join(r.model.name for r in runs)
            ratio = (
                runs[0].results[endpoint].requests_per_s / runs[1].results[endpoint].requests_per_s
            )
            print(f"{runs[0].results[endpoint].name}: req/s {names} = {ratio:.2f}x")
    state_result = runs[0].results[1]
    ok = (
        state_result.requests_per_s >= 1000
        and state_result.p99_ms < 25
        and state_result.errors == 0
        and runs[0].stalled < 1.0
    )
    print(
        f"targets for {runs[0].model.name} (>= 1000 req/s, p99 < 25 ms, 0 errors, /healthz "
        f"< 1 s beside stalling clients): {'met' if ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
