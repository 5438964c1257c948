"""Screenshots of every run's View Tomogram page, as the real viewer draws it (for the README).

    python -m tools.screenshots --data-root DIR --out docs/screenshots [--run DATASET/RUN ...]

``DIR`` must already be precomputed (``cryoet-ng precompute DIR``). The project's server is
started on a free local port, each run's ``/view/<dataset>/<run>`` link is opened in headless
Chromium and the window is saved as ``view-<dataset>-<run>.png`` once the viewer reports that
it has drawn everything: the same pictures ``tests/test_browser.py`` keeps as artifacts.
For the first run two more views of its state: ``zoomed-<dataset>-<run>.png`` (one xy
panel, zoomed in, picks at their physical size) and ``volume-rendering-<dataset>-<run>.png``
(the tomogram alone, volume rendering on with the state's own settings, in one 3-D panel).
Exits non-zero when Chromium is missing or a layer reports an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from cryoet_ng.catalogue import Catalogue
from tools.browser import (
    INSTALL_HINT,
    ProjectServer,
    Viewer,
    find_browser,
    open_view,
    serve_project,
    view_screenshot_name,
)
from tools.browser.pixels import RGB

ZOOM = 6.0  # the zoomed-in view: crossSectionScale divided by this


def save_picture(pixels: RGB, path: Path) -> Path:
    """Write a README picture as a 256-colour PNG: 185-210 KB for a 1280 x 900 window where
    true colour took 466-494 KB, at a mean error of 0.1-0.4 of 255 per channel (the pixel
    tests keep their lossless screenshots)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(pixels).quantize(colors=256, dither=Image.Dither.NONE)
    picture.save(path, optimize=True)
    return path


def zoomed_view(state: dict[str, Any], zoom: float = ZOOM) -> dict[str, Any]:
    """``state`` in one xy panel, ``zoom`` times closer (particles then cover many pixels)."""
    state = json.loads(json.dumps(state))
    state.update(layout="xy", crossSectionScale=state["crossSectionScale"] / zoom)
    return state


def volume_rendering_view(state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``state`` with only its image layer shown, volume rendering on (the state's own
    contrast and depth samples), in one 3-D panel without slices; ``changes`` top-level."""
    state = json.loads(json.dumps(state))
    for layer in state["layers"]:
        layer["visible"] = layer["type"] == "image"
        if layer["type"] == "image":
            layer["volumeRendering"] = "on"
    state.update(layout="3d", showSlices=False, **changes)
    return state


def extra_views(
    viewer: Viewer, server: ProjectServer, dataset: str, run: str, out: Path, timeout: float
) -> list[Path]:
    """The zoomed-in and volume-rendering pictures of one run (see the module docstring)."""
    state = server.get_json(f"/state/{dataset}/{run}.json")
    base = server.url("/v/main/")
    viewer.open_state(base, zoomed_view(state), timeout)
    shots = [save_picture(viewer.page(), out / f"zoomed-{dataset}-{run}.png")]
    viewer.load_state(base, volume_rendering_view(state))
    try:
        viewer.wait_volume_rendered(timeout)
        shots.append(save_picture(viewer.page(), out / f"volume-rendering-{dataset}-{run}.png"))
    finally:
        viewer.get("about:blank")  # no ray casting left running
    return shots


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__)
    parser.add_argument("--data-root", type=Path, required=True, help="precomputed data tree")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="PNG folder")
    parser.add_argument(
        "--run", action="append", metavar="DATASET/RUN", help="only these runs (repeatable)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per view")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    binaries = find_browser()
    if binaries is None:
        print(f"screenshots: {INSTALL_HINT}", file=sys.stderr)
        return 2
    catalogue = Catalogue.scan(args.data_root)
    runs = [(r.dataset_id, r.name) for r in catalogue.runs()]
    if args.run:
        wanted = {tuple(x.split("/", 1)) for x in args.run}
        runs = [r for r in runs if r in wanted]
    if not runs:
        print(f"screenshots: no runs to show in {args.data_root}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    problems = 0
    viewer = Viewer(binaries)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="cryoet-ng-states-") as states,
            serve_project(args.data_root.resolve(), Path(states)) as server,
        ):
            for dataset, run in runs:
                start = time.monotonic()
                report = open_view(viewer, server, dataset, run, args.timeout)
                path = save_picture(viewer.page(), args.out / view_screenshot_name(dataset, run))
                bad = [x for x in report.layers if not x.ok]
                problems += len(bad) + (not report.ready)
                print(f"{path}  ({time.monotonic() - start:.1f} s, {len(report.layers)} layers)")
                for layer in bad:
                    print(f"  layer {layer.name!r}: {layer.errors or layer.shader_error}")
            dataset, run = runs[0]
            start = time.monotonic()
            for path in extra_views(viewer, server, dataset, run, args.out, args.timeout):
                print(f"{path}  ({time.monotonic() - start:.1f} s)")
    finally:
        viewer.close()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
