"""Starting the headless browser for a real-viewer test module, or saying why not.

Without Chromium (or selenium) a browser test module is skipped with install instructions,
unless ``CRYOET_NG_REQUIRE_BROWSER=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os

import pytest

from tools.browser import INSTALL_HINT, WINDOW_SIZE, Viewer, find_browser

REQUIRE_ENV = "CRYOET_NG_REQUIRE_BROWSER"


def start_viewer(size: tuple[int, int] = WINDOW_SIZE) -> Viewer:
    """A headless Chromium driving the viewer, in a window of ``size``; skips (or fails, in
    CI) when the browser or selenium is missing."""
    binaries = find_browser()
    problem = None if binaries is not None else INSTALL_HINT
    if problem is None:
        try:
            import selenium  # noqa: F401
        except ImportError:
            problem = "selenium is not installed: pip install -e '.[test]'"
    if problem is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {problem}", pytrace=False)
        pytest.skip(problem)
    assert binaries is not None
    return Viewer(binaries, size)
