"""Stable, distinct layer colours that read well on Neuroglancer's black background.

Why not the portal's scheme: it seeds distinctipy with each layer's hash but excludes
colours already handed to earlier layers, so a layer's colour depends on glob order and
changes whenever another annotation is added. Here a layer's colour is a function of its
own identity, except for one deterministic collision rule:

* every layer hashes (blake2b of its identity) to a preferred slot of a fixed palette;
* layers are placed oldest first (annotation id, then spacing and shape), and a layer whose
  slot an *older* layer already holds steps through the palette with a stride taken from its
  own hash until it finds a free slot.

So adding an annotation (portal ids only grow) never changes the colour of an existing
layer, and removing one can only move layers that had stepped aside for it. Beyond
``len(PALETTE)`` layers colours repeat (their preferred slot is kept).
"""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

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


def assign(keys: Sequence[ColourKey], palette: Sequence[str] = PALETTE) -> list[str]:
    """Colour of each key (same order as ``keys``)."""
    size = len(palette)
    order = sorted(range(len(keys)), key=lambda i: (keys[i].age, keys[i].identity))
    taken: set[int] = set()
    slots = [0] * len(keys)
    for i in order:
        digest = _digest(keys[i].identity)
        slot = digest % size
        if slot in taken and len(taken) < size:
            # Stride coprime with the palette size, so the walk visits every slot.
            stride = 1 + (digest >> 32) % (size - 1)
            while _gcd(stride, size) != 1:
                stride += 1
            while slot in taken:
                slot = (slot + stride) % size
        taken.add(slot)
        slots[i] = slot
    return [palette[s] for s in slots]


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def label_colours(base: str, labels: Sequence[int]) -> dict[str, str]:
    """Per-label colours of a multi-label mask, stable per label value.

    Hue walks from the layer's own hue by the golden angle per label value, so label 7
    has the same colour whichever other labels are present.
    """
    r, g, b = (int(base[i : i + 2], 16) / 255 for i in (1, 3, 5))
    hue, _, _ = colorsys.rgb_to_hsv(r, g, b)
    out = {}
    for label in labels:
        h = (hue + 0.381966 * int(label)) % 1.0
        sat = 0.45 if int(label) % 2 else 0.75
        rr, gg, bb = colorsys.hsv_to_rgb(h, sat, 1.0)
        out[str(int(label))] = f"#{round(rr * 255):02x}{round(gg * 255):02x}{round(bb * 255):02x}"
    return out
