"""ngstate: catalogue metadata + precompute summaries -> a Neuroglancer viewer state.

A pure library (no Flask, no tensorstore): :func:`build_state` returns the state of one
tomogram (image layer with contrast, one layer per annotation and shape, stable colours,
camera) together with a :class:`Decision` per layer saying why it is visible or hidden.

The names below are imported on first use (PEP 562), so that ``ngstate.commands`` (read
by ``cryoet-ng --help``) does not pull in numpy and the state builder.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ngstate.api import (
        BuiltState,
        NotFoundError,
        StateOptions,
        build_state,
        resolve,
        state_inputs_mtime,
    )
    from ngstate.selection import Decision

_HOMES = {
    "BuiltState": "ngstate.api",
    "NotFoundError": "ngstate.api",
    "StateOptions": "ngstate.api",
    "build_state": "ngstate.api",
    "resolve": "ngstate.api",
    "state_inputs_mtime": "ngstate.api",
    "Decision": "ngstate.selection",
}
__all__ = [
    "BuiltState",
    "Decision",
    "NotFoundError",
    "StateOptions",
    "build_state",
    "resolve",
    "state_inputs_mtime",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ngstate' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
