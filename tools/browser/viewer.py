"""Drive the Neuroglancer client in headless Chromium: load states, wait, read back, screenshot.

Every wait has a timeout; a timeout raises :class:`ViewerTimeout` carrying the last report,
so a hung layer names itself instead of hanging the test run.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tools.browser.chromium import WINDOW_SIZE, BrowserBinaries, Chromium
from tools.browser.pixels import PANEL_GEOMETRY_JS, RGB, SliceGeometry, decode_png
from tools.browser.reports import REPORT_JS, ViewerReport, ViewerTimeout, dropped_layers

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

POLL_S = 0.1
# Polls in a row that must find the viewer ready (see wait_ready).
READY_STREAK = 2
_NEXT_FRAME_JS = "return new Promise((r) => requestAnimationFrame(() => r(true)));"
_CANVAS_JS = (
    "const d = window.viewer.display;"
    "if (d.gl.isContextLost()) return null;"
    "d.draw(); return d.canvas.toDataURL();"
)


class Viewer:
    """One headless Chromium with helpers to load and inspect Neuroglancer states."""

    def __init__(self, binaries: BrowserBinaries, size: tuple[int, int] = WINDOW_SIZE) -> None:
        self._browser = Chromium(binaries, size)
        self.driver: Chrome = self._browser.driver

    def close(self) -> None:
        self._browser.close()

    # -- navigation -------------------------------------------------------------------------

    def get(self, url: str) -> None:
        self.driver.get(url)

    @property
    def url(self) -> str:
        return self.driver.current_url

    def open_state(self, viewer_base: str, state: dict[str, Any], timeout: float) -> ViewerReport:
        """Load ``viewer_base#!<state>`` in a fresh page and wait until it is drawn.

        Raises if the viewer dropped a layer of ``state`` (see :func:`dropped_layers`).
        """
        self.load_state(viewer_base, state)
        report = self.wait_ready(timeout)
        problem = dropped_layers(report, state)
        if problem is not None:
            raise AssertionError(f"state opened at {viewer_base}: {problem}")
        return report

    def load_state(self, viewer_base: str, state: dict[str, Any]) -> None:
        """Navigate a fresh page to ``viewer_base#!<state>`` (no wait)."""
        fragment = urllib.parse.quote(json.dumps(state, separators=(",", ":")), safe="")
        self.driver.get("about:blank")
        self.driver.get(f"{viewer_base}#!{fragment}")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    # -- what the viewer reports ------------------------------------------------------------

    def report(self) -> ViewerReport:
        return ViewerReport.from_js(self.js(REPORT_JS))

    def wait_ready(self, timeout: float = 30.0, *, allow_errors: bool = False) -> ViewerReport:
        """Poll until the viewer is ready (or, with errors, until every source settled).

        A layer whose source failed never draws; once every source has settled and one of them
        failed, waiting longer cannot help, so the report is returned for the test to assert on
        (or raised, unless ``allow_errors``).
        """
        start = time.monotonic()
        report: ViewerReport | None = None
        streak = 0
        while time.monotonic() - start < timeout:
            report = self.report()
            # An image shader compiles at the layer's first draw: "pending" means that draw
            # has not happened yet, whatever isReady() says. (An annotation layer compiles
            # only once it has something to draw, so it cannot be waited for.)
            compiling = any(
                x.visible and x.type == "image" and x.shader == "pending" for x in report.layers
            )
            ready = report.exists and bool(report.layers) and report.ready and not compiling
            # Just after a source loads, its render layer attaches to the panels a tick later,
            # and until then isReady() is vacuously true: ask for readiness twice in a row,
            # polls apart (as neuroglancer's own screenshot tool checks after each frame).
            streak = streak + 1 if ready else 0
            if streak >= READY_STREAK:
                report = replace(report, elapsed_s=time.monotonic() - start)
                if not allow_errors and any(x.errors for x in report.layers):
                    raise ViewerTimeout("a layer failed to load", report)
                return report
            time.sleep(POLL_S)
        raise ViewerTimeout(
            f"viewer not ready after {timeout:.0f}s at {self.url}",
            None if report is None else replace(report, elapsed_s=time.monotonic() - start),
        )

    def wait_volume_rendered(self, timeout: float) -> ViewerReport:
        """Poll until every chunk in view is loaded (ready twice in a row, polls apart).

        With volume rendering on, the image shader's status never settles (the ray caster
        recompiles as it adapts its resolution), so unlike :meth:`wait_ready` it is not
        waited for.
        """
        start, streak = time.monotonic(), 0
        while time.monotonic() - start < timeout:
            report = self.report()
            streak = streak + 1 if report.ready else 0
            if streak >= READY_STREAK:
                return report
            time.sleep(POLL_S)
        raise ViewerTimeout(f"volume rendering not ready after {timeout:.0f}s", self.report())

    def state(self) -> dict[str, Any]:
        """The state as the viewer holds it (what it applied, not what we sent)."""
        # Through JSON so that keys left undefined are dropped instead of coming back as None.
        state: dict[str, Any] = self.js(
            "return JSON.parse(JSON.stringify(window.viewer.state.toJSON()));"
        )
        return state

    def set_visible(self, name: str, visible: bool) -> None:
        found = self.js(
            "const l = window.viewer.layerManager.getLayerByName(arguments[0]);"
            "if (!l) return false; l.setVisible(arguments[1]); return true;",
            name,
            visible,
        )
        if not found:
            raise KeyError(f"no layer {name!r} in the viewer")

    # -- pixels -----------------------------------------------------------------------------

    def canvas(self) -> RGB:
        """The WebGL canvas as an RGB uint8 array (draw, then read in the same task)."""
        data_url = self.js(_CANVAS_JS)
        if data_url is None:
            # SwiftShader can lose the context under memory or CPU pressure; say so plainly
            # rather than compare a blank picture.
            raise AssertionError("the viewer's WebGL context was lost; the canvas is blank")
        return decode_png(base64.b64decode(data_url.split(",", 1)[1]))

    def page(self) -> RGB:
        """The whole window as a person sees it (canvas plus layer list and panels), RGB."""
        return decode_png(self.driver.get_screenshot_as_png())

    def settled_canvas(self, timeout: float = 20.0, *, allow_errors: bool = False) -> RGB:
        """A canvas screenshot once the viewer is ready again (after a state change)."""
        # A change only marks chunks as needed on the next animation frame; wait for that
        # frame before asking isReady(), which would otherwise answer for the old view.
        self.js(_NEXT_FRAME_JS)
        self.wait_ready(timeout, allow_errors=allow_errors)
        return self.canvas()

    def slice_geometry(self) -> SliceGeometry:
        """Where the first cross-section panel's canvas pixels are in global coordinates."""
        return self.panel_geometry("slice")

    def panel_geometry(self, kind: str) -> SliceGeometry:
        """Pixel <-> global mapping of the first visible ``slice`` or ``perspective`` panel
        (for a perspective panel the mapping is exact with orthographic projection only)."""
        return SliceGeometry.from_js(self.js(PANEL_GEOMETRY_JS, kind))
