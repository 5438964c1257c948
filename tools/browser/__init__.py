"""The real Neuroglancer client in headless Chromium, for tests and ``tools/screenshots.py``.

One job per module:

- :mod:`~tools.browser.chromium`: find the system Chromium + chromedriver, start one headless
  with software WebGL2;
- :mod:`~tools.browser.reports`: what the viewer says it shows (layers, readiness, errors);
- :mod:`~tools.browser.viewer`: :class:`Viewer`, which loads states, waits and screenshots;
- :mod:`~tools.browser.pixels`: screenshots as arrays, diffs, PNG files, pixel geometry;
- :mod:`~tools.browser.wsgi`: serve a WSGI app on a thread;
- :mod:`~tools.browser.request_log`: record the requests a served app answers;
- :mod:`~tools.browser.project`: the project's own server and its View Tomogram link;
- :mod:`~tools.browser.stock`: the wheel's client as it ships, and cold loads of it.

It lives outside ``tests/`` so that tools import it without reaching into the tests; it is
dev tooling (selenium is a test extra), run from the repository root, not part of the
installed packages. Everything public is re-exported here: ``from tools.browser import Viewer``.
"""

from tools.browser.chromium import (
    INSTALL_HINT,
    WINDOW_SIZE,
    BrowserBinaries,
    Chromium,
    find_browser,
)
from tools.browser.pixels import PixelDiff, SliceGeometry, decode_png, save_png
from tools.browser.project import ProjectServer, open_view, serve_project, view_screenshot_name
from tools.browser.reports import (
    LayerReport,
    ViewerReport,
    ViewerTimeout,
    dropped_layers,
    layer_names,
)
from tools.browser.request_log import Request, RequestLog
from tools.browser.stock import ColdLoad, cold_load, serve_stock_client, stock_client_dir
from tools.browser.viewer import Viewer
from tools.browser.wsgi import ServedApp, serve_wsgi

__all__ = [
    "INSTALL_HINT",
    "WINDOW_SIZE",
    "BrowserBinaries",
    "Chromium",
    "ColdLoad",
    "LayerReport",
    "PixelDiff",
    "ProjectServer",
    "Request",
    "RequestLog",
    "ServedApp",
    "SliceGeometry",
    "Viewer",
    "ViewerReport",
    "ViewerTimeout",
    "cold_load",
    "decode_png",
    "dropped_layers",
    "find_browser",
    "layer_names",
    "open_view",
    "save_png",
    "serve_project",
    "serve_stock_client",
    "serve_wsgi",
    "stock_client_dir",
    "view_screenshot_name",
]
