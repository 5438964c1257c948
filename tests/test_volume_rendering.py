"""Volume rendering in the real viewer: dense material opaque, background transparent.

One tiny run (64^3 voxels, one dense sphere in block noise) is written with the tree builder,
precomputed by the real CLI (its contrast summary gives the state's 3-D range) and opened from
its View Tomogram state with volume rendering switched on: nothing else of the state changes
(inverted 3-D contrast, 128 depth samples). One 3-D panel, perspective projection, in a
512 x 512 window of its own browser.

Cost, measured on the 2-core machine (software WebGL): a frame of this view took 0.7-1.3 s
(load average 2); the demo's 128 x 128 x 64 run in a 1280 x 900 window with an orthographic
two-panel layout took over 90 s per frame, and a 3-D panel with orthographic projection
stalled the renderer for over 30 s even in this small window, so the panel is perspective
and the sphere's place on the canvas comes from the viewer's own projection matrix.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser_support import start_viewer

from tools.browser import ProjectServer, Viewer, save_png, serve_project
from tools.screenshots import volume_rendering_view

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
SIZE = 64  # voxels along each axis
RADIUS = 0.22 * SIZE  # the dense sphere's, voxels
DENSITY = -6.0  # the sphere's offset from the background mean, in background sd
BLOCK = 4  # noise block edge: binned levels keep the background's sd (a 4x level averages
# 64 voxels of white noise down to sd / 8, which would move the 3-D range onto the noise)
WINDOW = (512, 512)  # headless Chromium does not go narrower than 500 pixels
READY_TIMEOUT = 120.0
DATASET, RUN = "20000", "SPHERE"


def sphere_tomogram(seed: int = 0) -> np.ndarray:
    """(z, y, x) float32: unit-sd block noise, a sphere ``DENSITY`` sd darker in the middle."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (SIZE // BLOCK,) * 3)
    volume = coarse.repeat(BLOCK, 0).repeat(BLOCK, 1).repeat(BLOCK, 2).astype(np.float32)
    z, y, x = np.ogrid[:SIZE, :SIZE, :SIZE]
    centre = (SIZE - 1) / 2
    volume[(x - centre) ** 2 + (y - centre) ** 2 + (z - centre) ** 2 <= RADIUS**2] += DENSITY
    return volume


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectServer]:
    """The sphere run, precomputed by the CLI and served by ``server.create_app``."""
    import cryoet_ng_cli as cli
    from cryoet_ng.sample.builder import TreeBuilder

    root = tmp_path_factory.mktemp("vr") / "data"
    tree = TreeBuilder(root)
    tree.dataset(DATASET)
    tree.tomogram(tree.run(DATASET, RUN, (SIZE, SIZE, SIZE)), sphere_tomogram())
    assert cli.main(["precompute", str(root), "--workers", "1"]) == 0, "precompute failed"
    with serve_project(root, tmp_path_factory.mktemp("vr-states")) as server:
        yield server


@pytest.fixture(scope="module")
def viewer() -> Iterator[Viewer]:
    """A browser of its own: a small window keeps software ray casting to about a second."""
    browser = start_viewer(WINDOW)
    try:
        yield browser
    finally:
        browser.close()


def test_volume_rendering_makes_dense_material_opaque(
    service: ProjectServer, viewer: Viewer, request: pytest.FixtureRequest
) -> None:
    """Pixels whose rays cross the dense sphere are bright; rays through background only are
    dark: the inverted 3-D contrast makes dense (dark) voxels opaque."""
    served = service.get_json(f"/state/{DATASET}/{RUN}.json")
    state = volume_rendering_view(
        served,
        projectionOrientation=[0.0, 0.0, 0.0, 1.0],  # down z
        projectionScale=served["projectionScale"] * 2,  # the whole volume in view
        layerListPanel={"visible": False},
        selectedLayer={"visible": False},
        selection={"visible": False},
        toolPalettes={},
        showAxisLines=False,
    )
    (image,) = [x for x in state["layers"] if x["type"] == "image"]
    assert image["volumeRenderingDepthSamples"] == 128  # the state's own, not lowered here
    assert "invert_contrast_3D checkbox(default=true)" in image["shader"]
    viewer.load_state(service.url("/v/main/"), state)
    try:
        viewer.wait_volume_rendered(READY_TIMEOUT)
        begin = time.monotonic()
        drawn = viewer.canvas()  # one more frame, drawn and read back
        seconds = time.monotonic() - begin
        geometry = viewer.panel_geometry("perspective")
    finally:
        viewer.get("about:blank")  # no ray casting left running
    folder = Path(os.environ.get("CRYOET_NG_ARTIFACTS") or REPO / "test-artifacts")
    save_png(drawn, folder / "browser" / "volume-rendering.png")
    # The sphere's centre and a point on its equator, through the viewer's projection
    # (exact for points; global coordinates put voxel i's centre at i + 0.5).
    centre = np.full(3, SIZE / 2)
    equator = centre + np.array([RADIUS, 0.0, 0.0])
    (cu, cv), (eu, ev) = geometry.pixel_of(np.stack([centre, equator]))
    radius = float(np.hypot(eu - cu, ev - cv))
    v, u = np.mgrid[0 : drawn.shape[0], 0 : drawn.shape[1]]
    r = np.hypot(u + 0.5 - cu, v + 0.5 - cv) / radius
    brightness = drawn.astype(np.float64).mean(axis=-1)
    inside, background = brightness[r < 0.6], brightness[(r > 1.5) & (r < 2.1)]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"volume rendering ({drawn.shape[1]} x {drawn.shape[0]}, 128 samples): frame "
            f"{seconds:.2f} s; inside the sphere {inside.mean():.0f}, background "
            f"{background.mean():.0f} (of 255); load average {os.getloadavg()[0]:.1f}"
        )
    assert radius > 20, f"the sphere covers {radius:.0f} pixels: view not as set up"
    assert inside.size > 1000 and background.size > 1000
    assert inside.mean() > 200, f"dense sphere not opaque: mean {inside.mean():.0f}"
    assert inside.mean() > 3 * background.mean(), (inside.mean(), background.mean())
    assert np.median(background) < 60, f"background not transparent: {np.median(background)}"
