"""Where things are as the browser sees them: the data URL and the viewer's URL.

Redirect targets are built only from the configuration (``viewer_url`` or the self-hosted
client path): nothing a client sends can choose where a redirect goes.
"""

from __future__ import annotations

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from server.services import services


def data_url() -> str:
    """Where the browser finds the data: the configured URL, else this server's /data."""
    # Not request.host_url: that IRI-decodes the host on every call (~40 us); the state
    # cache is keyed by this string, so it must be cheap.
    return (
        services().config.data_url or f"{request.scheme}://{request.host}{request.root_path}/data"
    )


def viewer_base() -> str:
    """The Neuroglancer client URL, without any fragment."""
    configured = services().config.viewer_url
    if configured:
        return configured.split("#", 1)[0]
    return url_for("client.viewer_root", token=services().config.server.viewer_token)


def viewer_redirect(fragment: str) -> Response:
    """302 to the viewer with ``#!fragment``; never cached (the state behind it may change)."""
    response = redirect(f"{viewer_base()}#!{fragment}", code=302)
    response.headers["Cache-Control"] = "no-store"
    return response
