"""Typed 3-vectors: sizes, steps and extents as ``tuple[T, T, T]``.

``tuple(f(v) for v in xyz)`` is a ``tuple[T, ...]`` to a type checker; :func:`triple` checks
the length once and gives the 3-tuple type, instead of a ``type: ignore`` at every such site.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def triple(values: Iterable[T]) -> tuple[T, T, T]:
    """The three values as a tuple; ValueError for any other count."""
    a, b, c = values
    return a, b, c
