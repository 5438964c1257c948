"""Rendering cost of particles drawn at their physical size, in the real viewer, 200,000 picks.

    .venv/bin/python -m benchmarks.render [--data-root demo-data] [--repeat N]

The demo tree (``make demo-data``) has a run with 200,000 picks (10001/TS_100). Its View
Tomogram state is opened in headless Chromium (software WebGL, as in the tests) with only
that layer shown, at the state's overview zoom and zoomed in 8x, and every spatial level of
the annotation index loaded (``crossSectionAnnotationSpacing`` and
``projectionAnnotationSpacing`` 0.01 pixel). One full frame (all four panels) is timed as
``display.draw()`` plus a 1-pixel ``readPixels`` (which waits for the GPU), median of N:

* the layer hidden (the frame without picks);
* baseline: the same picks with a fixed 10-pixel marker (what the states drew before);
* ours: the physical-size ring of ``ngstate/shaders.py`` (per-point screen scale and
  sphere section in the vertex shader).

The picks' cost is the frame time minus the hidden frame's; the ratio compares ours with
the baseline. Prints the load average: on a shared machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.browser import INSTALL_HINT, Viewer, find_browser, serve_project

RUN = ("10001", "TS_100")
# One frame per call: in software WebGL a frame of 200,000 picks can take tens of seconds, and
# a script call is cut off after 90 s (tools.browser.chromium.SCRIPT_TIMEOUT_S).
_DRAW = """
const d = window.viewer.display, gl = d.gl, px = new Uint8Array(4);
const t = performance.now();
d.draw();
gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
return performance.now() - t;
"""
FIXED_SHADER = "void main() {\n  setColor(defaultColor());\n  setPointMarkerSize(10.0);\n}"


def largest_point_layer(state: dict[str, Any]) -> dict[str, Any]:
    """The run's many-picks layer (the nucleosomes): the last point layer of the state."""
    points = [x for x in state["layers"] if x["type"] == "annotation"]
    return points[-1]


def variant(state: dict[str, Any], name: str, shader: str | None, zoom: float) -> dict[str, Any]:
    out = json.loads(json.dumps(state))
    for layer in out["layers"]:
        layer["visible"] = layer["name"] == name and shader is not None
        if layer["name"] == name and shader is not None:
            layer["shader"] = shader
            layer["crossSectionAnnotationSpacing"] = 0.01
            layer["projectionAnnotationSpacing"] = 0.01
    out["crossSectionScale"] = state["crossSectionScale"] / zoom
    out["projectionScale"] = state["projectionScale"] / zoom
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render", description=__doc__)
    parser.add_argument("--data-root", type=Path, default=Path("demo-data"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    binaries = find_browser()
    if binaries is None:
        print(f"render benchmark: {INSTALL_HINT}", file=sys.stderr)
        return 2
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    viewer = Viewer(binaries)
    rows = []
    try:
        with (
            tempfile.TemporaryDirectory() as states,
            serve_project(args.data_root.resolve(), Path(states)) as server,
        ):
            state = server.get_json(f"/state/{RUN[0]}/{RUN[1]}.json")
            layer = largest_point_layer(state)
            ours = layer["shader"]
            for zoom in (1.0, 8.0):
                medians = {}
                variants = (("hidden", None), ("fixed 10 px", FIXED_SHADER), ("ours", ours))
                for label, shader in variants:
                    viewer.open_state(
                        server.url("/v/main/"), variant(state, layer["name"], shader, zoom), 300
                    )
                    times = [float(viewer.js(_DRAW)) for _ in range(args.repeat)]
                    medians[label] = statistics.median(times)
                rows.append((zoom, medians))
    finally:
        viewer.close()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"\n{layer['name']}: 200,000 picks, 4 panels, 1280x900, median of {args.repeat} frames")
    print("| zoom | hidden ms | fixed 10 px ms | ours ms | picks' cost: fixed | ours | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for zoom, m in rows:
        base, fixed, ours_ms = m["hidden"], m["fixed 10 px"], m["ours"]
        cost_fixed, cost_ours = fixed - base, ours_ms - base
        ratio = cost_ours / cost_fixed if cost_fixed > 0 else float("nan")
        print(
            f"| {zoom:g}x | {base:.0f} | {fixed:.0f} | {ours_ms:.0f} | {cost_fixed:.0f} | "
            f"{cost_ours:.0f} | {ratio:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
