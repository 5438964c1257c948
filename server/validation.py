"""Is a JSON object a Neuroglancer viewer state? Asked of neuroglancer's own ``ViewerState``.

``neuroglancer.ViewerState(obj)`` converts members lazily, so constructing it accepts
almost anything. Reading every wrapped property (recursively, layers included) makes
it convert, and so reject, each member it knows; unknown keys are kept, as the viewer
itself ignores them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import neuroglancer
import numpy as np
from neuroglancer.json_wrappers import JsonObjectWrapper

MAX_DEPTH = 40
_SCALARS = (str, bytes, bool, int, float, np.ndarray, np.generic)


class InvalidState(ValueError):
    """The object is not a viewer state neuroglancer accepts; the message names the member."""


def validate_viewer_state(state: dict[str, Any]) -> None:
    """Raise :class:`InvalidState` unless neuroglancer parses every member of ``state``."""
    try:
        viewer_state = neuroglancer.ViewerState(state)
    except Exception as exc:  # neuroglancer raises TypeError, ValueError, KeyError...
        raise InvalidState(_describe("state", exc)) from exc
    _touch(viewer_state, "state", 0)


def _describe(where: str, exc: Exception) -> str:
    detail = f": {exc}" if str(exc) else ""
    return f"not a Neuroglancer viewer state: {where} rejected ({type(exc).__name__}{detail})"


@functools.cache
def _properties(cls: type) -> tuple[str, ...]:
    names = (
        name
        for klass in cls.__mro__
        for name, attr in vars(klass).items()
        if isinstance(attr, property) and not name.startswith("__")
    )
    return tuple(dict.fromkeys(names))


def _touch(value: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidState(f"not a Neuroglancer viewer state: {where} nested too deeply")
    if value is None or isinstance(value, _SCALARS):
        return
    if isinstance(value, JsonObjectWrapper):
        if isinstance(value, neuroglancer.ManagedLayer):
            _touch(value.layer, where, depth + 1)  # a slot, not a property
        for name in _properties(value.__class__):
            member_where = f"{where}.{name.lstrip('_')}"
            member = _convert(functools.partial(getattr, value, name), member_where)
            _touch(member, member_where, depth + 1)
    elif hasattr(value, "items") and callable(value.items):
        for key, item in _convert(lambda: list(value.items()), where):
            _touch(item, f"{where}[{key!r}]", depth + 1)
    elif hasattr(value, "__iter__"):
        for i, item in enumerate(_convert(lambda: list(value), where)):
            _touch(item, f"{where}[{i}]", depth + 1)


def _convert(read: Callable[[], Any], where: str) -> Any:
    """``read()``, with any neuroglancer conversion error turned into InvalidState."""
    try:
        return read()
    except Exception as exc:  # neuroglancer raises TypeError, ValueError, KeyError...
        raise InvalidState(_describe(where, exc)) from exc
