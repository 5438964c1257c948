"""Parameter validation and safe resolution of ``/data/<path>`` inside the configured roots.

Every id coming from a URL is matched against a strict pattern *before* it is used for a
lookup, and a data path is only ever served when it names a regular file that, after
resolving symlinks, still lies inside one of the roots.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from werkzeug.security import safe_join

DATASET_ID = re.compile(r"[0-9]{1,20}")
RUN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
TOMOGRAM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Percent-escapes that must never reach path resolution: '.', '/', '\' and NUL.
_ENCODED_SEPARATORS = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)


class BadParameter(ValueError):
    """A URL parameter does not have the expected form (answered with 400)."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"invalid {name} {value[:80]!r}: expected {expected}")
        self.name = name


def dataset_id(value: str) -> str:
    return _check("dataset id", value, DATASET_ID, "digits")


def run_name(value: str) -> str:
    # '.' and '..' match the character class but are never run names.
    if value in (".", ".."):
        raise BadParameter("run name", value, "a run name, not a relative path")
    return _check("run name", value, RUN_NAME, "1-128 characters of [A-Za-z0-9_.-]")


def tomogram_id(value: str | None) -> str | None:
    if value is None:
        return None
    return _check("tomogram id", value, TOMOGRAM_ID, "1-64 characters of [A-Za-z0-9_-]")


def _check(name: str, value: str, pattern: re.Pattern[str], expected: str) -> str:
    if not pattern.fullmatch(value):
        raise BadParameter(name, value, expected)
    return value


def has_encoded_separator(raw_uri: str | None) -> bool:
    """True when the raw request path carries an encoded dot, slash, backslash or NUL.

    The WSGI server decodes ``%2e%2e`` to ``..`` before routing; looking at the raw URI
    lets us refuse such requests outright instead of relying on later normalisation.
    """
    if not raw_uri:
        return False
    return bool(_ENCODED_SEPARATORS.search(raw_uri.split("?", 1)[0]))


def resolve_data_path(roots: Sequence[Path], subpath: str) -> Path | None:
    """The regular file ``subpath`` names in the first root holding it, else None.

    ``roots`` must already be resolved (absolute, symlink-free) paths.

    Refuses absolute paths, empty, ``.`` and ``..`` segments, backslashes and NUL, then
    joins with werkzeug's ``safe_join`` and finally resolves symlinks and checks the
    result is still inside the (resolved) root, so a link pointing outside is refused.
    """
    if not subpath or subpath.startswith("/") or "\\" in subpath or "\0" in subpath:
        return None
    if any(part in ("", ".", "..") for part in subpath.split("/")):
        return None
    for root in roots:
        joined = safe_join(str(root), subpath)
        if joined is None:
            return None
        candidate = Path(joined)
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            continue
        if resolved.is_relative_to(root) and resolved.is_file():
            return resolved
    return None
