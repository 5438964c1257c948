"""Drive the real Neuroglancer client in headless Chromium and ask it what it shows.

Used by ``tests/test_browser.py`` and ``tools/screenshots.py``. Everything the viewer reports
comes from its own JavaScript objects (``window.viewer``), read through Selenium:

- per layer: data-source load state and error, layer messages, readiness, visibility,
  and for image layers whether the shader compiled (``layer.shaderError``: ``undefined`` =
  not compiled yet, ``null`` = compiled, an Error otherwise);
- ``viewer.isReady()``: true only once the visible chunks are drawn;
- the canvas as pixels (``viewer.display.draw(); canvas.toDataURL()``).

Every wait has a timeout; a timeout raises :class:`ViewerTimeout` carrying the last report,
so a hung layer names itself instead of hanging the test run.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
INSTALL_HINT = (
    "headless Chromium is needed for the real-viewer tests: "
    "apt-get update && apt-get install -y chromium chromium-driver "
    "(set CHROMIUM / CHROMEDRIVER to use other binaries)"
)

# Flags that give WebGL2 through SwiftShader in a headless, GPU-less container
# (see /work/shared/viewer-in-a-browser.md; --use-gl=swiftshader breaks WebGL2).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
WINDOW_SIZE = (1280, 900)


class ViewerTimeout(AssertionError):
    """The viewer did not become ready in time; carries the last report it gave."""

    def __init__(self, message: str, report: ViewerReport | None) -> None:
        detail = "" if report is None else "\n" + report.describe()
        super().__init__(message + detail)
        self.report = report


@dataclass(frozen=True)
class BrowserBinaries:
    chromium: str
    chromedriver: str


def find_browser() -> BrowserBinaries | None:
    """The Chromium and chromedriver binaries, or None when either is missing."""

    def first(env: str, candidates: tuple[str, ...], name: str) -> str | None:
        if os.environ.get(env):
            return os.environ[env] if Path(os.environ[env]).exists() else None
        found = [c for c in candidates if Path(c).exists()]
        return found[0] if found else shutil.which(name)

    chromium = first("CHROMIUM", CHROMIUM_CANDIDATES, "chromium")
    driver = first("CHROMEDRIVER", CHROMEDRIVER_CANDIDATES, "chromedriver")
    if chromium is None or driver is None:
        return None
    return BrowserBinaries(chromium, driver)


@dataclass(frozen=True)
class LayerReport:
    """One managed layer as the viewer sees it."""

    name: str
    type: str | None
    visible: bool
    ready: bool
    # Data sources still loading (their loadState is undefined).
    loading: int
    errors: tuple[str, ...]
    messages: tuple[str, ...]
    # "none" (no shader of that kind), "pending" (not compiled yet), "ok" or "error".
    shader: str
    shader_error: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and self.shader != "error"


@dataclass(frozen=True)
class ViewerReport:
    """The whole viewer: readiness plus every layer's report."""

    exists: bool
    ready: bool
    layers: tuple[LayerReport, ...] = ()
    elapsed_s: float = 0.0
    # Messages in the client's status bar (e.g. a part of the state it failed to restore).
    status: tuple[str, ...] = ()

    def layer(self, name: str) -> LayerReport:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r} in the viewer; layers: {[x.name for x in self.layers]}")

    @property
    def visible(self) -> set[str]:
        return {x.name for x in self.layers if x.visible}

    @property
    def settled(self) -> bool:
        """Every data source finished loading (successfully or not)."""
        return self.exists and all(x.loading == 0 for x in self.layers)

    def describe(self) -> str:
        lines = [f"viewer exists={self.exists} ready={self.ready} after {self.elapsed_s:.1f}s"]
        lines += [f"  status bar: {text!r}" for text in self.status]
        for x in self.layers:
            lines.append(
                f"  {x.name!r} type={x.type} visible={x.visible} ready={x.ready} "
                f"loading={x.loading} shader={x.shader} {x.shader_error} errors={list(x.errors)} "
                f"messages={list(x.messages)}"
            )
        return "\n".join(lines)


# One round trip gathers everything. "ready" is viewer.isReady() except that layers whose
# source failed are ignored: they never become ready, and the test wants their error, not a hang.
# It runs in an animation frame callback: readiness is only meaningful between drawn frames.
_REPORT_BODY = """
const v = window.viewer;
if (!v) return {exists: false};
// Image and annotation layers: their user shader. (A segmentation layer's shaderError belongs
// to its skeleton shader, which never compiles without skeletons.)
const shaderOf = (layer) => {
  const w = layer.type === 'image' ? layer.shaderError
      : (layer.type === 'annotation' ? layer.annotationDisplayState.shaderError : undefined);
  if (w === undefined) return ['none', ''];
  if (w.value === undefined) return ['pending', ''];
  if (w.value === null) return ['ok', ''];
  return ['error', String(w.value.message || w.value)];
};
v.chunkQueueManager.flushPendingChunkUpdates();
const layers = v.layerManager.managedLayers.map((ml) => {
  const layer = ml.layer;
  const sources = layer ? layer.dataSources : [];
  return {
    name: ml.name,
    type: layer ? layer.type : null,
    visible: ml.visible,
    ready: !!ml.isReady(),
    loading: sources.filter((s) => s.loadState === undefined).length,
    errors: sources.filter((s) => s.loadState && s.loadState.error)
        .map((s) => String(s.loadState.error.message || s.loadState.error)),
    messages: layer ? Array.from(layer.messages)
        .filter((m) => m.severity >= 1).map((m) => m.message) : [],
    shader: layer ? shaderOf(layer) : ['none', ''],
  };
});
const ready = v.display.isReady() && layers.every((l) => l.ready || l.errors.length > 0);
// Status-bar messages: where the client reports, e.g., a state it could not restore.
const status = Array.from(document.querySelectorAll(
    '#neuroglancer-status-container > *, #neuroglancer-status-container-modal > *'))
    .map((e) => e.textContent.replace(/Dismiss$/, '').trim())
    .filter((t) => t);
return {exists: true, ready, layers, status};
"""
_REPORT_JS = (
    "return new Promise((resolve) => requestAnimationFrame(() => resolve((() => {"
    + _REPORT_BODY
    + "})())));"
)


class Viewer:
    """One headless Chromium with helpers to load and inspect Neuroglancer states."""

    def __init__(self, binaries: BrowserBinaries, size: tuple[int, int] = WINDOW_SIZE) -> None:
        # Selenium Manager would try to download a driver; use the system one directly.
        os.environ.setdefault("SE_OFFLINE", "true")
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self._profile = tempfile.mkdtemp(prefix="cryoet-ng-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = binaries.chromium
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={size[0]},{size[1]}")
        options.add_argument(f"--user-data-dir={self._profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(binaries.chromedriver), options=options)
        self.driver.set_page_load_timeout(30)
        # A script waits for an animation frame; in software WebGL on a busy machine one frame
        # (first shader compiles, volume rendering) can take tens of seconds.
        self.driver.set_script_timeout(90)

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

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
        fragment = urllib.parse.quote(json.dumps(state, separators=(",", ":")), safe="")
        self.driver.get("about:blank")
        self.driver.get(f"{viewer_base}#!{fragment}")
        report = self.wait_ready(timeout)
        problem = dropped_layers(report, state)
        if problem is not None:
            raise AssertionError(f"state opened at {viewer_base}: {problem}")
        return report

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    # -- what the viewer reports ------------------------------------------------------------

    def report(self) -> ViewerReport:
        raw = self.js(_REPORT_JS)
        if not raw or not raw.get("exists"):
            return ViewerReport(exists=False, ready=False)
        layers = tuple(
            LayerReport(
                name=x["name"],
                type=x["type"],
                visible=bool(x["visible"]),
                ready=bool(x["ready"]),
                loading=int(x["loading"]),
                errors=tuple(x["errors"]),
                messages=tuple(x["messages"]),
                shader=x["shader"][0],
                shader_error=x["shader"][1],
            )
            for x in raw["layers"]
        )
        return ViewerReport(
            exists=True, ready=bool(raw["ready"]), layers=layers, status=tuple(raw["status"])
        )

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
            if streak >= 2:
                report = _with_elapsed(report, time.monotonic() - start)
                if not allow_errors and any(x.errors for x in report.layers):
                    raise ViewerTimeout("a layer failed to load", report)
                return report
            time.sleep(0.1)
        raise ViewerTimeout(
            f"viewer not ready after {timeout:.0f}s at {self.url}",
            None if report is None else _with_elapsed(report, time.monotonic() - start),
        )

    def state(self) -> dict[str, Any]:
        """The state as the viewer holds it (what it applied, not what we sent)."""
        # Through JSON so that keys left undefined are dropped instead of coming back as None.
        return self.js("return JSON.parse(JSON.stringify(window.viewer.state.toJSON()));")

    def restore_state(self, state: dict[str, Any]) -> None:
        """Replace the viewer's state in place (same page, layers reloaded as needed)."""
        self.js(
            "window.viewer.state.reset(); window.viewer.state.restoreState(arguments[0]);", state
        )

    def set_visible(self, name: str, visible: bool) -> None:
        found = self.js(
            "const l = window.viewer.layerManager.getLayerByName(arguments[0]);"
            "if (!l) return false; l.setVisible(arguments[1]); return true;",
            name,
            visible,
        )
        if not found:
            raise KeyError(f"no layer {name!r} in the viewer")

    def resources(self) -> list[str]:
        """URLs the page fetched so far (Resource Timing), e.g. to see which index it read."""
        return list(self.js("return performance.getEntriesByType('resource').map(e => e.name);"))

    def console_errors(self) -> list[str]:
        try:
            logs = self.driver.get_log("browser")
        except Exception:  # some drivers do not offer logs; they are diagnostics only
            return []
        return [x["message"] for x in logs if x.get("level") == "SEVERE"]

    # -- pixels -----------------------------------------------------------------------------

    def canvas(self) -> np.ndarray:
        """The WebGL canvas as an RGB uint8 array (draw, then read in the same task)."""
        from PIL import Image

        data_url = self.js(
            "const d = window.viewer.display;"
            "if (d.gl.isContextLost()) return null;"
            "d.draw(); return d.canvas.toDataURL();"
        )
        if data_url is None:
            # SwiftShader can lose the context under memory or CPU pressure; say so plainly
            # rather than compare a blank picture.
            raise AssertionError("the viewer's WebGL context was lost; the canvas is blank")
        raw = base64.b64decode(data_url.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))

    def page(self) -> np.ndarray:
        """The whole window as a person sees it (canvas plus layer list and panels), RGB."""
        from PIL import Image

        png = self.driver.get_screenshot_as_png()
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def settled_canvas(self, timeout: float = 20.0, *, allow_errors: bool = False) -> np.ndarray:
        """A canvas screenshot once the viewer is ready again (after a state change)."""
        # A change only marks chunks as needed on the next animation frame; wait for that
        # frame before asking isReady(), which would otherwise answer for the old view.
        self.js("return new Promise((r) => requestAnimationFrame(() => r(true)));")
        self.wait_ready(timeout, allow_errors=allow_errors)
        return self.canvas()

    def panels(self) -> list[tuple[str, tuple[int, int, int, int]]]:
        """Visible rendered panels as (kind, (left, top, width, height)) in canvas pixels."""
        raw = self.js(
            """
            return Array.from(window.viewer.display.panels).filter((p) => p.visible).map((p) => [
              p.sliceView !== undefined ? 'slice' : 'perspective',
              [p.canvasRelativeLogicalLeft, p.canvasRelativeLogicalTop,
               p.renderViewport.logicalWidth, p.renderViewport.logicalHeight]]);
            """
        )
        return [(kind, (int(b[0]), int(b[1]), int(b[2]), int(b[3]))) for kind, b in raw]

    def slice_geometry(self) -> SliceGeometry:
        """Where the first cross-section panel's canvas pixels are in global coordinates."""
        return self.panel_geometry("slice")

    def panel_geometry(self, kind: str) -> SliceGeometry:
        """Pixel -> global mapping of the first visible ``slice`` or ``perspective`` panel
        (for a perspective panel the mapping is exact with orthographic projection only)."""
        raw = self.js(
            """
            const slice = arguments[0] === 'slice';
            const p = Array.from(window.viewer.display.panels)
                .find((x) => x.visible && (x.sliceView !== undefined) === slice);
            const pp = (slice ? p.sliceView.projectionParameters : p.projectionParameters).value;
            const info = pp.displayDimensionRenderInfo;
            return {
              box: [p.canvasRelativeLogicalLeft, p.canvasRelativeLogicalTop,
                    pp.logicalWidth, pp.logicalHeight],
              inv: Array.from(pp.invViewProjectionMat),
              dims: Array.from(info.displayDimensionIndices),
              factors: Array.from(info.canonicalVoxelFactors),
            };
            """,
            kind,
        )
        inv = np.asarray(raw["inv"], dtype=np.float64).reshape(4, 4).T  # column-major
        return SliceGeometry(tuple(int(v) for v in raw["box"]), inv, raw["dims"], raw["factors"])


@dataclass(frozen=True)
class SliceGeometry:
    """Canvas pixel -> global coordinate mapping of one cross-section panel."""

    box: tuple[int, ...]  # left, top, width, height in canvas pixels
    inv_view_projection: np.ndarray  # clip space -> display (canonical voxel) space
    display_dims: list[int]  # global dimension index of each display axis (-1: none)
    canonical_factors: list[float]

    def global_coordinates(self, shape: tuple[int, int]) -> np.ndarray:
        """Global coordinates (H, W, 3) of the centres of a canvas of ``shape`` (H, W)."""
        left, top, width, height = self.box
        v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
        # Pixel centres to clip space; clip y points up, canvas rows go down.
        x = 2.0 * (u + 0.5 - left) / width - 1.0
        y = 1.0 - 2.0 * (v + 0.5 - top) / height
        clip = np.stack([x, y, np.zeros_like(x), np.ones_like(x)], axis=-1)
        world = clip @ self.inv_view_projection.T
        world = world[..., :3] / world[..., 3:4]
        out = np.full((*shape, 3), np.nan)
        for axis, dim in enumerate(self.display_dims):
            if dim >= 0:
                out[..., dim] = world[..., axis] / self.canonical_factors[axis]
        inside = (u >= left) & (u < left + width) & (v >= top) & (v < top + height)
        out[~inside] = np.nan
        return out

    def pixel_of(self, global_xyz: np.ndarray) -> np.ndarray:
        """Canvas pixel (u, v) of global points (..., 3), the inverse of global_coordinates."""
        left, top, width, height = self.box
        points = np.asarray(global_xyz, dtype=np.float64)
        world = np.zeros((*points.shape[:-1], 4))
        world[..., 3] = 1.0
        for axis, dim in enumerate(self.display_dims):
            if dim >= 0:
                world[..., axis] = points[..., dim] * self.canonical_factors[axis]
        clip = world @ np.linalg.inv(self.inv_view_projection).T
        x, y = clip[..., 0] / clip[..., 3], clip[..., 1] / clip[..., 3]
        return np.stack([(x + 1) * width / 2 + left - 0.5, (1 - y) * height / 2 + top - 0.5], -1)


def layer_names(state: dict[str, Any]) -> list[str]:
    """Layer names of a state, in order (either the list or the older ``{name: spec}`` form)."""
    layers = state.get("layers", [])
    return list(layers) if isinstance(layers, dict) else [x["name"] for x in layers]


def dropped_layers(report: ViewerReport, state: dict[str, Any]) -> str | None:
    """Why the viewer does not show exactly the layers of ``state``, or None if it does.

    Neuroglancer deletes a layer whose restore throws and only says so in the status bar, so
    a dropped layer is otherwise invisible to source and readiness checks.
    """
    shown = [x.name for x in report.layers]
    expected = layer_names(state)
    if shown == expected and not report.status:
        return None
    return (
        f"viewer lacks layers {[x for x in expected if x not in shown]}, "
        f"has extra {[x for x in shown if x not in expected]}; status bar: {list(report.status)}"
    )


def _with_elapsed(report: ViewerReport, elapsed: float) -> ViewerReport:
    return ViewerReport(report.exists, report.ready, report.layers, elapsed, report.status)


def save_png(pixels: np.ndarray, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@dataclass(frozen=True)
class PixelDiff:
    """Where two screenshots of the same view differ."""

    changed: np.ndarray  # bool mask (H, W)
    fraction: float
    centroid: tuple[float, float] | None  # (x, y) in pixels
    mean_colour: tuple[float, float, float] | None  # of the changed pixels in the "on" image

    @staticmethod
    def between(on: np.ndarray, off: np.ndarray, threshold: int = 24) -> PixelDiff:
        delta = np.abs(on.astype(np.int16) - off.astype(np.int16)).max(axis=-1)
        changed = delta > threshold
        count = int(changed.sum())
        if count == 0:
            return PixelDiff(changed, 0.0, None, None)
        ys, xs = np.nonzero(changed)
        colour = on[changed].mean(axis=0)
        return PixelDiff(
            changed,
            count / changed.size,
            (float(xs.mean()), float(ys.mean())),
            (float(colour[0]), float(colour[1]), float(colour[2])),
        )


@dataclass
class ServedApp:
    """A WSGI app served from a background thread on a free local port."""

    base_url: str
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)


@contextmanager
def serve_wsgi(app: Any, host: str = "127.0.0.1") -> Iterator[ServedApp]:
    """Serve ``app`` with werkzeug's threaded server on a free port for the duration."""
    import logging

    from werkzeug.serving import make_server

    # One line per chunk request drowns the test output; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-server", daemon=True)
    thread.start()
    served = ServedApp(f"http://{host}:{server.server_port}", server, thread)
    try:
        yield served
    finally:
        served.close()


@dataclass(frozen=True)
class Request:
    path: str
    range: str | None
    status: int


class RequestLog:
    """WSGI middleware recording every request the viewer makes (path, Range, status).

    Chunk fetches happen in the client's web worker, which the page's Resource Timing does not
    see; the server side does, so this is how a test learns which index levels were read.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.entries: list[Request] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        byte_range = environ.get("HTTP_RANGE")

        def record(status: str, headers: Any, exc_info: Any = None) -> Any:
            with self._lock:
                self.entries.append(Request(path, byte_range, int(status.split(" ", 1)[0])))
            return start_response(status, headers, exc_info)

        return self.app(environ, record)

    def mark(self) -> int:
        """A position to later ask for the requests made since."""
        with self._lock:
            return len(self.entries)

    def since(self, mark: int) -> list[Request]:
        with self._lock:
            return list(self.entries[mark:])


@dataclass
class ProjectServer:
    """The project's own server (``server.create_app``), served locally with a request log."""

    base_url: str
    requests: RequestLog

    def url(self, path: str) -> str:
        return self.base_url + path

    def get_json(self, path: str) -> Any:
        import urllib.request

        with urllib.request.urlopen(self.url(path), timeout=20) as response:
            return json.load(response)


@contextmanager
def serve_project(
    data_root: Path, states_dir: Path, overrides: dict[str, Any] | None = None
) -> Iterator[ProjectServer]:
    """Serve ``data_root`` with the default configuration, saved states in ``states_dir``.

    ``overrides``: more dotted configuration keys, e.g. ``{"server.cors_origins": [...]}``.
    """
    from cryoet_ng.config import load_config
    from server import create_app

    overrides = {
        "data_root": str(data_root),
        "server.states_db": str(states_dir),
        **(overrides or {}),
    }
    app = create_app(load_config(None, overrides))
    # Short-lived event streams, so shutting down never waits on one held open by a client
    # (the served client opens none: see server/client.py).
    app.config["EVENT_STREAM_SECONDS"] = 5.0
    app.config["EVENT_HEARTBEAT_SECONDS"] = 1.0
    log = RequestLog(app)
    with serve_wsgi(log) as served:
        yield ProjectServer(served.base_url, log)


def view_screenshot_name(dataset: str, run: str) -> str:
    return f"view-{dataset}-{run}.png"


def open_view(
    viewer: Viewer, server: ProjectServer, dataset: str, run: str, timeout: float
) -> ViewerReport:
    """Follow a run's View Tomogram link and wait (bounded) until the viewer has drawn it."""
    viewer.get(server.url(f"/view/{dataset}/{run}"))
    return viewer.wait_ready(timeout, allow_errors=True)


# -- the client as it ships, from another origin ---------------------------------------------


def stock_client_dir() -> Path:
    """The Neuroglancer client inside the installed ``neuroglancer`` wheel, unmodified."""
    import neuroglancer

    return Path(neuroglancer.__file__).parent / "static" / "client"


@contextmanager
def serve_stock_client(token: str = "stock") -> Iterator[str]:
    """Serve the wheel's client folder as it ships from a plain static server on a free port.

    Yields the client's URL (``http://127.0.0.1:<port>/v/<token>/``): the bundle only starts
    under a ``/v/<token>/`` path. Nothing is patched; requests are not logged.
    """
    import functools
    import http.server

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    with tempfile.TemporaryDirectory(prefix="cryoet-ng-stock-") as root:
        (Path(root) / "v").mkdir()
        (Path(root) / "v" / token).symlink_to(stock_client_dir(), target_is_directory=True)
        handler = functools.partial(Quiet, directory=root)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, name="stock-client", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/v/{token}/"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


# The unpatched Python-package client has no Python server behind it: its status bar says so,
# harmlessly, and that message is not a layer problem.
NO_PYTHON_SERVER = "Python server"


@dataclass(frozen=True)
class ColdLoad:
    """One cold page load: what the viewer restored, and how long the restore took."""

    report: ViewerReport
    seconds: float

    def problem(self, expected: list[str]) -> str | None:
        status = tuple(x for x in self.report.status if NO_PYTHON_SERVER not in x)
        errors = [f"{x.name}: {list(x.errors)}" for x in self.report.layers if x.errors]
        shown = [x.name for x in self.report.layers]
        if shown == expected and not status and not errors:
            return None
        missing = [x for x in expected if x not in shown]
        return f"missing layers {missing}; status bar {list(status)}; layer errors {errors}"


def cold_load(
    viewer: Viewer, url: str, expected: list[str], timeout: float, cpu_slowdown: float = 1.0
) -> ColdLoad:
    """Open ``url`` as a first visit would: empty HTTP cache (so no compiled-code cache
    either), a new page, the renderer's CPU slowed ``cpu_slowdown`` times (Chromium's own
    throttling, the load of a busy machine). Waits until the restore is over: the layer count
    reached ``len(expected)``, or a status message says a layer failed, and every data
    source has settled (loaded or failed); layers need not have drawn.
    """
    driver = viewer.driver
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": cpu_slowdown})
    start = time.monotonic()
    driver.get(url)
    report: ViewerReport | None = None
    try:
        while time.monotonic() - start < timeout:
            report = viewer.report()
            failed = any(NO_PYTHON_SERVER not in x for x in report.status)
            complete = report.exists and (len(report.layers) >= len(expected) or failed)
            if complete and report.settled:
                return ColdLoad(report, time.monotonic() - start)
            time.sleep(0.1)
    finally:
        driver.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": 1})
    raise ViewerTimeout(f"cold load of {url[:120]} not settled after {timeout:.0f}s", report)
