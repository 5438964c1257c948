"""The View Tomogram service: a thin Flask app over ngstate.

``create_app(config)`` builds the app; ``server.wsgi:app`` and
``gunicorn 'server:create_app()'`` are the production entry points. ``create_app`` is
imported on first use (PEP 562), so ``server.commands`` (read by ``cryoet-ng --help``)
does not import Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from server.app import create_app

        return create_app
    raise AttributeError(f"module 'server' has no attribute {name!r}")
