"""Saved states: ``POST /states`` stores a Neuroglancer state, ``GET /states/<id>`` returns it,
``GET /s/<id>`` opens the viewer with it.

A body is accepted only when it is JSON (by Content-Type and by content), at most
``server.max_body_bytes`` long, a JSON object with ``layers``, and parsed without error
by ``neuroglancer.ViewerState`` (every member, see :mod:`server.validation`), and strict
JSON: numbers must be finite (``NaN``, ``Infinity`` and overflowing literals such as
``1e999`` are refused, since ``json`` would read them as non-finite floats and write them
back as ``Infinity``, which no other JSON reader accepts) and strings valid Unicode (a lone
surrogate escape such as ``"\\ud800"`` is refused: it has no UTF-8 form). It is stored in
canonical form (sorted keys, compact, UTF-8), so identical states get the same id.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from cryoet_ng.metadata import strict_json
from server.services import services
from server.state_service import FRAGMENT_SAFE
from server.state_store import valid_state_id
from server.urls import viewer_redirect
from server.validation import InvalidState, validate_viewer_state

bp = Blueprint("states", __name__)


def parse_state(body: bytes) -> dict[str, Any]:
    """The state as a dict; aborts with 400 naming what is wrong."""
    try:
        state = strict_json(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        abort(400, description=f"body is not valid JSON: {exc}")
    if not isinstance(state, dict):
        abort(400, description="a viewer state must be a JSON object")
    layers = state.get("layers")
    if not isinstance(layers, list | dict):
        abort(400, description="a viewer state needs 'layers' (a list or an object)")
    try:
        validate_viewer_state(state)
    except InvalidState as exc:
        abort(400, description=str(exc))
    return state


def canonical_json(state: dict[str, Any]) -> bytes:
    """Sorted keys, compact, UTF-8; aborts with 400 for a string that is not valid Unicode."""
    text = json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end].encode("unicode_escape").decode()
        after = text[max(0, exc.start - 40) : exc.start]
        abort(400, description=f"body is not valid JSON: lone surrogate {bad} after {after!r}")


def read_body(limit: int) -> bytes:
    """The request body, or 413 when it exceeds ``limit`` (Content-Length or chunked).

    werkzeug's max-length stream stops at the limit and only raises on a read past it,
    so read one byte more than allowed to find out whether there is more.
    """
    too_large = f"state larger than {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        abort(413, description=too_large)
    try:
        body = request.stream.read(limit)
        if len(body) == limit and request.stream.read(1):
            abort(413, description=too_large)
    except RequestEntityTooLarge:
        abort(413, description=too_large)
    return body


@bp.post("/states")
def save_state() -> tuple[Response, int]:
    if request.mimetype != "application/json":
        abort(415, description="Content-Type must be application/json")
    state = parse_state(read_body(services().config.server.max_body_bytes))
    state_id = services().store.put(canonical_json(state))
    url = url_for("states.short_link", state_id=state_id, _external=True)
    response = jsonify(id=state_id, url=url)
    response.headers["Location"] = url_for("states.get_state", state_id=state_id)
    return response, 201


def saved_state(state_id: str) -> bytes:
    """The saved state's JSON; 400 for a malformed id (checked before any lookup), else 404."""
    if not valid_state_id(state_id):
        abort(400, description="invalid state id: expected 32 characters of [a-z2-7]")
    body = services().store.get(state_id)
    if body is None:
        abort(404, description=f"no saved state {state_id}")
    return body


@bp.get("/states/<state_id>")
def get_state(state_id: str) -> Response:
    return Response(saved_state(state_id), mimetype="application/json")


@bp.get("/s/<state_id>")
def short_link(state_id: str) -> BaseResponse:
    body = saved_state(state_id)  # 400 / 404 before any redirect
    if services().config.server.state_delivery == "url":
        return viewer_redirect(url_for("states.get_state", state_id=state_id, _external=True))
    return viewer_redirect(urllib.parse.quote(body.decode(), safe=FRAGMENT_SAFE))
