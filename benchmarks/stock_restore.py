"""The unpatched client's restore window, per state, on cold loads: is it safe by margin?

    .venv/bin/python -m benchmarks.stock_restore [--data-root DIR] [--loads N] [--rates 1 2 4]

The client of the ``neuroglancer`` wheel, as it ships, from its own origin (as the test
``test_unpatched_client_opens_every_state_completely_on_cold_loads``), opens each state
cold (empty HTTP cache) by its URL, the renderer's CPU slowed by each rate (Chromium's
throttling), with :mod:`tools.browser.restore_trace` timing the restore inside the page.
The *window* is the time from the state's ``reset()`` to the last annotation layer
restored; a layer can be lost once it passes 400 ms (README, "Neuroglancer restore-order
bug"). States:

* every run's View Tomogram state as served;
* baseline ``floor``: the smallest state that can hit the bug, the served state with one
  annotation layer of ``type``/``name``/``source`` only: what no state-side change can go
  below;
* ``no layers``: the served state without layers (the reset and top-level keys alone).

Without ``--data-root`` the test-size sample tree is generated and precomputed in a
temporary folder. Prints the load average: on a shared machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.browser import (
    INSTALL_HINT,
    Viewer,
    cold_load,
    find_browser,
    serve_project,
    serve_stock_client,
    serve_wsgi,
)
from tools.browser.restore_trace import RestoreTimes, install_restore_trace, read_restore_trace

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

LOAD_TIMEOUT_S = 60.0
FLOOR, NO_LAYERS = "floor", "no layers"


def variants(served: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The served states plus the two reference states (see the module docstring)."""
    out = dict(served)
    base = next(s for s in served.values() if any(x["type"] == "annotation" for x in s["layers"]))
    first = next(x for x in base["layers"] if x["type"] == "annotation")
    lean = {k: v for k, v in base.items() if k not in ("layers", "selectedLayer")}
    out[FLOOR] = {**lean, "layers": [{k: first[k] for k in ("type", "name", "source")}]}
    out[NO_LAYERS] = lean
    return out


@contextmanager
def serve_states(states: dict[str, dict[str, Any]]) -> Iterator[str]:
    """Serve each state as JSON at ``/<index>`` with CORS for any origin; yields the base."""
    bodies = [json.dumps(s).encode() for s in states.values()]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = bodies[int(environ.get("PATH_INFO", "/0").strip("/") or 0)]
        headers = [("Content-Type", "application/json"), ("Access-Control-Allow-Origin", "*")]
        start_response("200 OK", headers)
        return [body]

    with serve_wsgi(app) as served:
        yield served.base_url


def sample_tree(folder: Path) -> Path:
    """The test-size sample tree, precomputed in-process (as the browser tests do)."""
    import cryoet_ng_cli as cli
    from cryoet_ng.sample import generate

    root = folder / "data"
    generate(root, seed=0, size="test")
    if cli.main(["precompute", str(root), "--workers", "1"]) != 0:
        raise SystemExit("precompute of the sample tree failed")
    return root


def measure(
    viewer: Viewer, client: str, states: dict[str, dict[str, Any]], loads: int, rate: float
) -> dict[str, list[tuple[bool, RestoreTimes | None]]]:
    """Cold-load every state ``loads`` times (interleaved) at CPU slowdown ``rate``."""
    results: dict[str, list[tuple[bool, RestoreTimes | None]]] = {name: [] for name in states}
    with serve_states(states) as base:
        for _ in range(loads):
            for index, (name, state) in enumerate(states.items()):
                expected = [x["name"] for x in state.get("layers", [])]
                load = cold_load(
                    viewer, f"{client}#!{base}/{index}", expected, LOAD_TIMEOUT_S, rate
                )
                lost = load.problem(expected) is not None
                results[name].append((lost, read_restore_trace(viewer)))
    return results


def row(name: str, rate: float, runs: list[tuple[bool, RestoreTimes | None]], floor: float) -> str:
    times = [t for _, t in runs if t is not None]
    windows = [t.window_ms for t in times if t.window_ms is not None]
    lost = sum(lost for lost, _ in runs)

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values):.0f}" if values else "-"

    window = ms(windows)
    ratio = f"{statistics.median(windows) / floor:.2f}" if windows and floor else "-"
    return (
        f"| {name} | {rate:g}x | {lost} of {len(runs)} | {window} | "
        f"{max(windows, default=float('nan')):.0f} | {ms([t.reset_ms for t in times])} | "
        f"{ms([t.restore_ms for t in times])} | {ms([t.max_gap_ms for t in times])} | {ratio} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stock_restore", description=__doc__)
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--loads", type=int, default=8)
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    args = parser.parse_args(argv)
    binaries = find_browser()
    if binaries is None:
        print(f"stock restore benchmark: {INSTALL_HINT}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data_root.resolve() if args.data_root else sample_tree(Path(scratch))
        print(f"load average at start: {os.getloadavg()[0]:.2f}")
        viewer = Viewer(binaries)
        try:
            install_restore_trace(viewer)
            with serve_stock_client() as client:
                origin = client.split("/v/", 1)[0]
                overrides = {"viewer_url": client, "server.cors_origins": [origin]}
                with serve_project(root, Path(scratch) / "states", overrides) as project:
                    from cryoet_ng.catalogue import Catalogue

                    runs = [(r.dataset_id, r.name) for r in Catalogue.scan(root).runs()]
                    served = {f"{d}/{r}": project.get_json(f"/state/{d}/{r}.json") for d, r in runs}
                    states = variants(served)
                    tables = [
                        (rate, measure(viewer, client, states, args.loads, rate))
                        for rate in args.rates
                    ]
        finally:
            viewer.close()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"\ncold loads in the unpatched client, state by URL, {args.loads} per state and rate")
    print(
        "| state | CPU slowdown | lost a layer | window median ms | max | reset | restore | "
        "max gap | window / floor |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for rate, results in tables:
        floor = [t.window_ms for _, t in results[FLOOR] if t is not None and t.window_ms]
        reference = statistics.median(floor) if floor else 0.0
        for name, outcomes in results.items():
            print(row(name, rate, outcomes, reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
