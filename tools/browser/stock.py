"""The Neuroglancer client as the installed wheel ships it, from another origin, cold-loaded.

Issue 14's acceptance: our states must open completely in an *unpatched* client. The wheel's
client folder is served as it is (no patch, no rewrite) by a plain static WSGI app on its own
port, so its origin differs from the project server's (data then needs CORS, as a portal's
viewer would). :func:`cold_load` opens a URL as a first visit would and waits until the
restore is over.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.utils import send_from_directory

from tools.browser.reports import ViewerReport, ViewerTimeout
from tools.browser.viewer import Viewer
from tools.browser.wsgi import serve_wsgi

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# The unpatched Python-package client has no Python server behind it: its status bar says so,
# harmlessly, and that message is not a layer problem.
NO_PYTHON_SERVER = "Python server"
POLL_S = 0.1


def stock_client_dir() -> Path:
    """The Neuroglancer client inside the installed ``neuroglancer`` wheel, unmodified."""
    import neuroglancer

    return Path(neuroglancer.__file__).parent / "static" / "client"


def static_client_app(folder: Path, token: str) -> Any:
    """A WSGI app serving ``folder`` under ``/v/<token>/`` (the bundle only starts under such
    a path), ``index.html`` for the folder itself; 404 for anything else."""
    prefix = f"/v/{token}/"

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        try:
            if not path.startswith(prefix):
                raise NotFound()
            response = send_from_directory(folder, path[len(prefix) :] or "index.html", environ)
        except HTTPException as exc:
            return exc(environ, start_response)
        return response(environ, start_response)

    return app


@contextmanager
def serve_stock_client(token: str = "stock") -> Iterator[str]:
    """Serve the wheel's client folder as it ships, on a free port; yields the client's URL
    (``http://127.0.0.1:<port>/v/<token>/``)."""
    with serve_wsgi(static_client_app(stock_client_dir(), token)) as served:
        yield f"{served.base_url}/v/{token}/"


@dataclass(frozen=True)
class ColdLoad:
    """One cold page load: what the viewer restored, and how long the restore took."""

    report: ViewerReport
    seconds: float

    def problem(self, expected: list[str]) -> str | None:
        """None when exactly ``expected`` layers were restored without errors, else why not."""
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
            time.sleep(POLL_S)
    finally:
        driver.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": 1})
    raise ViewerTimeout(f"cold load of {url[:120]} not settled after {timeout:.0f}s", report)
