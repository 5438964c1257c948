"""Screenshots of every run's View Tomogram page, as the real viewer draws it (for the README).

    python -m tools.screenshots --data-root DIR --out docs/screenshots [--run DATASET/RUN ...]

``DIR`` must already be precomputed (``cryoet-ng precompute DIR``). The project's server is
started on a free local port, each run's ``/view/<dataset>/<run>`` link is opened in headless
Chromium and the window is saved as ``view-<dataset>-<run>.png`` once the viewer reports that
it has drawn everything: the same pictures ``tests/test_browser.py`` keeps as artifacts.
Exits non-zero when Chromium is missing or a layer reports an error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cryoet_ng.catalogue import Catalogue
from tools.browser import (
    INSTALL_HINT,
    Viewer,
    find_browser,
    open_view,
    save_png,
    serve_project,
    view_screenshot_name,
)


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
                path = save_png(viewer.page(), args.out / view_screenshot_name(dataset, run))
                bad = [x for x in report.layers if not x.ok]
                problems += len(bad) + (not report.ready)
                print(f"{path}  ({time.monotonic() - start:.1f} s, {len(report.layers)} layers)")
                for layer in bad:
                    print(f"  layer {layer.name!r}: {layer.errors or layer.shader_error}")
    finally:
        viewer.close()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
