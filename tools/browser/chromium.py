"""Headless Chromium: find the system binaries and start one with software WebGL2.

The tests and ``tools/screenshots.py`` use the Debian ``chromium`` and ``chromium-driver``
packages (a test tool's own browser download does not work offline). Starting a browser
costs about 5 s, so callers share one per test module (see ``tests/test_browser.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # selenium is a test extra: imported when a browser starts, not before
    from selenium.webdriver import Chrome

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
# A page or script that takes longer has hung; the viewer's own waits are bounded separately.
DRIVER_TIMEOUT_S = 30
SCRIPT_TIMEOUT_S = 90


@dataclass(frozen=True)
class BrowserBinaries:
    """The Chromium executable and the chromedriver that drives it."""

    chromium: str
    chromedriver: str


def _first(env: str, candidates: tuple[str, ...], name: str) -> str | None:
    """``$env`` if set (and present), else the first existing candidate, else ``$PATH``."""
    if os.environ.get(env):
        return os.environ[env] if Path(os.environ[env]).exists() else None
    found = [c for c in candidates if Path(c).exists()]
    return found[0] if found else shutil.which(name)


def find_browser() -> BrowserBinaries | None:
    """The Chromium and chromedriver binaries, or None when either is missing."""
    chromium = _first("CHROMIUM", CHROMIUM_CANDIDATES, "chromium")
    driver = _first("CHROMEDRIVER", CHROMEDRIVER_CANDIDATES, "chromedriver")
    if chromium is None or driver is None:
        return None
    return BrowserBinaries(chromium, driver)


class Chromium:
    """One headless Chromium under Selenium, with a fresh profile folder removed on close."""

    def __init__(self, binaries: BrowserBinaries, size: tuple[int, int] = WINDOW_SIZE) -> None:
        # Selenium Manager would try to download a driver; use the system one directly.
        os.environ.setdefault("SE_OFFLINE", "true")
        from selenium.webdriver import Chrome, ChromeOptions
        from selenium.webdriver.chrome.service import Service

        self.profile = Path(tempfile.mkdtemp(prefix="cryoet-ng-chromium-"))
        options = ChromeOptions()
        options.binary_location = binaries.chromium
        for flag in (*CHROMIUM_FLAGS, f"--window-size={size[0]},{size[1]}"):
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        try:
            self.driver: Chrome = Chrome(service=Service(binaries.chromedriver), options=options)
        except BaseException:
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        self.driver.set_page_load_timeout(DRIVER_TIMEOUT_S)
        # A script may wait for an animation frame; in software WebGL on a busy machine one
        # frame (first shader compiles, volume rendering) can take tens of seconds.
        self.driver.set_script_timeout(SCRIPT_TIMEOUT_S)

    def close(self) -> None:
        """Quit the browser (and its driver process) and delete the profile."""
        try:
            self.driver.quit()
        finally:
            # A renderer stuck in a long frame (software volume rendering on a loaded machine)
            # can make quit() time out and leave the browser running, ray casting for good:
            # end whatever still runs with this profile (unique to this instance).
            _kill_processes_using(self.profile)
            shutil.rmtree(self.profile, ignore_errors=True)


def _kill_processes_using(profile: Path) -> None:
    """SIGKILL every process whose command line names ``--user-data-dir=<profile>`` (Linux
    /proc; elsewhere nothing to do)."""
    marker = f"--user-data-dir={profile}".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().split(b"\0"):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
