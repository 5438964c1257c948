"""The objects every request shares, reached from blueprints through :func:`services`.

Flask's ``flaskr/db.py`` pattern: the factory (:mod:`server.app`) builds one
:class:`Services` and attaches it with :func:`attach`; blueprints and helper modules read
it back with :func:`services` inside a request. Blueprints import this module and plain
helper modules only, never the factory or each other, so the import graph has no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from flask import Flask, current_app

from cryoet_ng.config import Config
from server.state_service import StateService
from server.state_store import StateStore

EXTENSION = "cryoet_ng"


@dataclass(frozen=True)
class Services:
    config: Config
    states: StateService
    store: StateStore
    data_roots: tuple[Path, ...]  # resolved; data_root first, then out_root if different
    client_dir: Path  # neuroglancer/static/client of the installed package


def attach(app: Flask, shared: Services) -> None:
    app.extensions[EXTENSION] = shared


def services() -> Services:
    """The current app's services (inside a request or an app context)."""
    return cast(Services, current_app.extensions[EXTENSION])


def neuroglancer_client_dir() -> Path:
    import neuroglancer

    return Path(neuroglancer.__file__).resolve().parent / "static" / "client"
