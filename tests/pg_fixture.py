"""A throw-away PostgreSQL server for tests (session fixture ``postgres_url``).

Uses ``CRYOET_NG_TEST_POSTGRES_URL`` when set; otherwise runs ``initdb`` + ``pg_ctl`` from
the installed PostgreSQL (PATH or /usr/lib/postgresql/<version>/bin) into a temporary
folder, on a free loopback port, with trust authentication, and stops it at the end.
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
Skips when no PostgreSQL is installed, unless ``CRYOET_NG_REQUIRE_POSTGRES=1``.

Import it into a test module with ``from pg_fixture import postgres_url`` (pytest puts
tests/ on sys.path: the folder has no __init__.py).
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE_ENV = "CRYOET_NG_REQUIRE_POSTGRES"
URL_ENV = "CRYOET_NG_TEST_POSTGRES_URL"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"PostgreSQL required ({REQUIRE_ENV}=1) but {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user(command: list[str]) -> list[str]:
    """Run as ``postgres`` when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *command]
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if os.environ.get(URL_ENV):
        yield os.environ[URL_ENV]
        return
    bin_dir = _bin_dir()
    if bin_dir is None:
        _unavailable("no pg_ctl on PATH or in /usr/lib/postgresql/*/bin")
        return
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user")
            return
    workdir = Path(tempfile.mkdtemp(prefix="cryoet-ng-pg-"))
    data = workdir / "data"
    if os.geteuid() == 0:
        os.chown(workdir, user.pw_uid, user.pw_gid)
    port = _free_port()
    pg_ctl = str(bin_dir / "pg_ctl")
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        subprocess.run(
            _as_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            _as_user(
                [pg_ctl, "-D", str(data), "-o", options, "-l", str(workdir / "log"), "-w", "start"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(workdir, ignore_errors=True)
        _unavailable(f"could not start it: {exc} {detail.decode(errors='replace')[-500:]}")
        return
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_user([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(workdir, ignore_errors=True)
