"""``/data/<path>``: the data tree and the precompute outputs, read-only.

Files go out through werkzeug's ``send_file`` (Range -> 206, ETag/Last-Modified -> 304),
so sharded precomputed layers, which need byte ranges, work. Content types are a short
allow-list; everything else is ``application/octet-stream`` with ``nosniff`` and a
sandbox CSP, so a file in the tree can never run as a page on this origin.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, request, send_file

from server.paths import has_encoded_separator, resolve_data_path
from server.services import services

bp = Blueprint("data", __name__)

JSON_NAMES = frozenset({"info", ".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"})
CONTENT_TYPES = {
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".txt": "text/plain; charset=utf-8",
    ".ndjson": "application/x-ndjson",
}
OCTET_STREAM = "application/octet-stream"


def content_type(name: str) -> str:
    if name in JSON_NAMES:
        return "application/json"
    dot = name.rfind(".")
    return CONTENT_TYPES.get(name[dot:].lower(), OCTET_STREAM) if dot > 0 else OCTET_STREAM


@bp.route("/data/<path:subpath>", methods=["GET", "HEAD"])
def data_file(subpath: str) -> Response:
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if has_encoded_separator(raw):
        abort(400, description="encoded '.', '/', '\\' or NUL in a data path")
    path = resolve_data_path(services().data_roots, subpath)
    if path is None:
        abort(404, description="no such file")
    response = send_file(
        path,
        mimetype=content_type(path.name),
        conditional=True,
        etag=True,
        max_age=None,
    )
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["Accept-Ranges"] = "bytes"
    return response
