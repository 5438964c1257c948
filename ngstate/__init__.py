"""ngstate: catalogue metadata + precompute summaries -> a Neuroglancer viewer state.

A pure library (no Flask, no tensorstore): :func:`build_state` returns the state of one
tomogram (image layer with contrast, one layer per annotation and shape, stable colours,
camera) together with a :class:`Decision` per layer saying why it is visible or hidden.
"""

from ngstate.api import (
    BuiltState,
    NotFoundError,
    StateOptions,
    build_state,
    resolve,
    state_inputs_mtime,
)
from ngstate.selection import Decision

__all__ = [
    "BuiltState",
    "Decision",
    "NotFoundError",
    "StateOptions",
    "build_state",
    "resolve",
    "state_inputs_mtime",
]
