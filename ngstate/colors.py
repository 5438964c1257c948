"""Stable, distinct layer colours that read well on Neuroglancer's black background.

Why not the portal's scheme: it seeds distinctipy with each layer's hash but excludes
colours already handed to earlier layers, so a layer's colour depends on glob order and
changes whenever another annotation is added. Here a layer's colour is a function of its
own identity, except for one deterministic collision rule:

* every layer hashes (blake2b of its identity) to a preferred slot of a fixed palette;
* layers are placed oldest first (annotation id, then spacing and shape), and a layer whose
  colour is too close to an *older* layer's (CIELAB distance below :data:`MIN_DISTANCE`, so
  not only the same slot: two light lavenders count as one colour) steps through the palette
  with a stride taken from its own hash until it finds a colour far enough from all of them
  (or, once none is left, the free slot farthest from them).

So adding an annotation (portal ids only grow) never changes the colour of an existing
layer, and removing one can only move layers that had stepped aside for it. Beyond
``len(PALETTE)`` layers colours repeat (their preferred slot is kept).

Instance labels (the segments of a multi-label mask, the instances of instance picks) are
coloured by label value from one shared palette, ``cryoet_ng/instance_colours.py``, so a
mask's label n and the picks of instance n match; :func:`instance_label_colours` gives a
mask layer's ``segmentColors``.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from cryoet_ng.instance_colours import instance_colour

# 12 hues x 2 tones (vivid, light). Lightness is kept high so every colour stays readable
# over a black cross-section; pure blue (hue 240) is lightened for the same reason.
_HUES = (0, 30, 55, 90, 140, 170, 190, 210, 235, 265, 295, 325)


def _palette() -> tuple[str, ...]:
    colours = []
    for saturation, value in ((0.80, 1.0), (0.40, 1.0)):
        for hue in _HUES:
            sat = saturation * (0.75 if 200 <= hue <= 270 else 1.0)
            r, g, b = colorsys.hsv_to_rgb(hue / 360, sat, value)
            colours.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return tuple(colours)


PALETTE: tuple[str, ...] = _palette()


@dataclass(frozen=True)
class ColourKey:
    """What a layer's colour depends on: its identity and its age."""

    identity: str  # e.g. "GO:0022626|cytosolic ribosome|101|Point"
    age: tuple[int, str]  # sort key: older layers first (numeric annotation id, rest)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def preferred_slot(identity: str, size: int = len(PALETTE)) -> int:
    return _digest(identity) % size


# Colours closer than this (CIE 1976 delta E) are treated as one; ~25 separates the
# palette's neighbouring light tones, which read as the same colour over a dark image.
MIN_DISTANCE = 25.0


def _lab(colour: str) -> tuple[float, float, float]:
    """CIELAB (D65) of a ``#rrggbb`` colour."""
    rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    x = (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047
    y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    z = (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def distance(a: str, b: str) -> float:
    """CIE 1976 colour difference of two ``#rrggbb`` colours."""
    la, lb = _lab(a), _lab(b)
    return sum((p - q) ** 2 for p, q in zip(la, lb, strict=True)) ** 0.5


@functools.cache
def _distances(palette: tuple[str, ...]) -> tuple[tuple[float, ...], ...]:
    """Pairwise distances of a palette, computed once (assignment runs per state build)."""
    return tuple(tuple(distance(a, b) for b in palette) for a in palette)


def assign(keys: Sequence[ColourKey], palette: Sequence[str] = PALETTE) -> list[str]:
    """Colour of each key (same order as ``keys``)."""
    return list(_assign(tuple(keys), tuple(palette)))


@functools.lru_cache(maxsize=1024)
def _assign(keys: tuple[ColourKey, ...], palette: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`assign`, memoised: a warm state rebuild reuses its layers' colours."""
    size = len(palette)
    table = _distances(palette)
    order = sorted(range(len(keys)), key=lambda i: (keys[i].age, keys[i].identity))
    taken: list[int] = []
    slots = [0] * len(keys)
    for i in order:
        digest = _digest(keys[i].identity)
        # Stride coprime with the palette size, so the walk visits every slot.
        stride = 1 + (digest >> 32) % (size - 1)
        while math.gcd(stride, size) != 1:
            stride += 1
        walk = [(digest + k * stride) % size for k in range(size)]
        free = [s for s in walk if s not in taken] or walk[:1]

        def nearest(slot: int) -> float:
            return min((table[slot][t] for t in taken), default=1e9)

        slot = next((s for s in free if nearest(s) >= MIN_DISTANCE), None)
        if slot is None:
            slot = max(free, key=nearest)  # first of the farthest, in walk order
        taken.append(slot)
        slots[i] = slot
    return tuple(palette[s] for s in slots)


def instance_label_colours(labels: Sequence[int]) -> dict[str, str]:
    """``segmentColors`` of a multi-label mask: each label's colour in the instance palette."""
    return {str(int(label)): instance_colour(int(label)) for label in labels}
