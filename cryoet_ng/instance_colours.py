"""One colour per instance label, shared by instance masks and instance points.

Label ``n`` (an instance mask's segment id, an instance pick's ``instance_id``) is drawn in
``INSTANCE_PALETTE[(n - 1) % len(INSTANCE_PALETTE)]`` wherever it appears: the precompute
bakes it into instance points' ``color`` property and ngstate writes it into the mask
layer's ``segmentColors``, so the points of instance 3 and the mask of instance 3 match.

The palette: farthest-point sampling in CIELAB (D65, CIE 1976 distance) over an 18-level
sRGB grid restricted to lightness >= 45 (readable over the dark cross-sections) and chroma
>= 25 (no greys, which vanish in a grey tomogram); the seed is the most saturated colour
and sampling stops at the first colour closer than 25 to those chosen. That gives 46
colours, every pair at least 25.0 apart (the first 40: 27.6), most distinct first, so
low labels, the common case, are the easiest to tell apart. Beyond 46 labels colours
repeat. ``tests/test_colours.py`` checks the distances.
"""

from __future__ import annotations

import numpy as np

INSTANCE_PALETTE: tuple[str, ...] = (
    "#a500ff", "#00ff00", "#ff4b00", "#00d2ff", "#69780f", "#ff87c3", "#0069e1", "#ffff00",
    "#4bffb4", "#ffe1b4", "#a55a3c", "#f0a51e", "#ff1ed2", "#2d7869", "#ff005a", "#7878a5",
    "#00a50f", "#d2ff87", "#d287ff", "#b4fff0", "#f0d2ff", "#96e100", "#00a5ff", "#785aff",
    "#d20078", "#69b469", "#b4b400", "#f0a5a5", "#00ff78", "#ff874b", "#96875a", "#a55a78",
    "#00c3b4", "#966900", "#f06978", "#b43ca5", "#ffe178", "#b42dd2", "#1e87a5", "#d23c2d",
    "#a5a5ff", "#785ab4", "#e1a569", "#ffd200", "#f00fff", "#b4d2a5",
)  # fmt: skip

_RGB = np.array(
    [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in INSTANCE_PALETTE], dtype=np.uint8
)


def instance_colour(label: int) -> str:
    """``#rrggbb`` of instance label ``label`` (labels count from 1; 0 is background)."""
    return INSTANCE_PALETTE[(int(label) - 1) % len(INSTANCE_PALETTE)]


def instance_colours_rgb(labels: np.ndarray) -> np.ndarray:
    """(n, 3) uint8 colours of ``labels``, vectorised (instance points' ``color`` property)."""
    index = (np.asarray(labels, dtype=np.int64) - 1) % len(INSTANCE_PALETTE)
    return _RGB[index]
