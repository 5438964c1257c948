"""Screenshots as numpy arrays: decoding, saving, where two differ, and where a pixel is.

A screenshot is an RGB ``uint8`` array (H, W, 3). :class:`SliceGeometry` maps the pixels of a
cross-section panel back to global (voxel) coordinates with the viewer's own projection
matrix, so a test can compare what is drawn with the data file it came from.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

RGB = NDArray[np.uint8]


def decode_png(data: bytes) -> RGB:
    """PNG bytes -> RGB array (alpha dropped)."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def save_png(pixels: RGB, path: Path) -> Path:
    """Write ``pixels`` to ``path`` (folders created) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@dataclass(frozen=True)
class PixelDiff:
    """Where two screenshots of the same view differ."""

    changed: NDArray[np.bool_]  # (H, W)
    fraction: float
    centroid: tuple[float, float] | None  # (x, y) in pixels
    mean_colour: tuple[float, float, float] | None  # of the changed pixels in the "on" image

    @staticmethod
    def between(on: RGB, off: RGB, threshold: int = 24) -> PixelDiff:
        """Pixels whose largest channel difference exceeds ``threshold`` (of 255)."""
        delta = np.abs(on.astype(np.int16) - off.astype(np.int16)).max(axis=-1)
        changed = delta > threshold
        count = int(changed.sum())
        if count == 0:
            return PixelDiff(changed, 0.0, None, None)
        ys, xs = np.nonzero(changed)
        colour = on[changed].mean(axis=0)
        return PixelDiff(
            changed,
            count / changed.size,
            (float(xs.mean()), float(ys.mean())),
            (float(colour[0]), float(colour[1]), float(colour[2])),
        )


# The first visible panel of a kind (arguments[0]: "slice" or "perspective"): its box on the
# canvas and its inverse projection.
PANEL_GEOMETRY_JS = """
const slice = arguments[0] === 'slice';
const p = Array.from(window.viewer.display.panels)
    .find((x) => x.visible && (x.sliceView !== undefined) === slice);
const pp = (slice ? p.sliceView.projectionParameters : p.projectionParameters).value;
const info = pp.displayDimensionRenderInfo;
return {
  box: [p.canvasRelativeLogicalLeft, p.canvasRelativeLogicalTop,
        pp.logicalWidth, pp.logicalHeight],
  inv: Array.from(pp.invViewProjectionMat),
  dims: Array.from(info.displayDimensionIndices),
  factors: Array.from(info.canonicalVoxelFactors),
};
"""


@dataclass(frozen=True)
class SliceGeometry:
    """Canvas pixel <-> global coordinate mapping of one panel (a cross-section, or a 3-D
    panel with orthographic projection, where the mapping is exact)."""

    box: tuple[int, ...]  # left, top, width, height in canvas pixels
    inv_view_projection: NDArray[np.float64]  # clip space -> display (canonical voxel) space
    display_dims: list[int]  # global dimension index of each display axis (-1: none)
    canonical_factors: list[float]

    @classmethod
    def from_js(cls, raw: dict[str, Any]) -> SliceGeometry:
        """Parse what :data:`PANEL_GEOMETRY_JS` returned."""
        inv = np.asarray(raw["inv"], dtype=np.float64).reshape(4, 4).T  # column-major
        box = tuple(int(v) for v in raw["box"])
        return cls(box, inv, [int(d) for d in raw["dims"]], [float(f) for f in raw["factors"]])

    def global_coordinates(self, shape: tuple[int, ...]) -> NDArray[np.float64]:
        """Global coordinates (H, W, 3) of the pixel centres of a canvas of ``shape`` (H, W).

        NaN outside the panel and along global axes the panel does not display.
        """
        left, top, width, height = self.box
        v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
        # Pixel centres to clip space; clip y points up, canvas rows go down.
        x = 2.0 * (u + 0.5 - left) / width - 1.0
        y = 1.0 - 2.0 * (v + 0.5 - top) / height
        clip = np.stack([x, y, np.zeros_like(x), np.ones_like(x)], axis=-1)
        world = clip @ self.inv_view_projection.T
        world = world[..., :3] / world[..., 3:4]
        out = np.full((shape[0], shape[1], 3), np.nan)
        for axis, dim in enumerate(self.display_dims):
            if dim >= 0:
                out[..., dim] = world[..., axis] / self.canonical_factors[axis]
        inside = (u >= left) & (u < left + width) & (v >= top) & (v < top + height)
        out[~inside] = np.nan
        return out

    def pixel_of(self, global_xyz: NDArray[np.float64]) -> NDArray[np.float64]:
        """Canvas pixel (u, v) of global points (..., 3): the inverse of global_coordinates."""
        left, top, width, height = self.box
        points = np.asarray(global_xyz, dtype=np.float64)
        world = np.zeros((*points.shape[:-1], 4))
        world[..., 3] = 1.0
        for axis, dim in enumerate(self.display_dims):
            if dim >= 0:
                world[..., axis] = points[..., dim] * self.canonical_factors[axis]
        clip = world @ np.linalg.inv(self.inv_view_projection).T
        x, y = clip[..., 0] / clip[..., 3], clip[..., 1] / clip[..., 3]
        return np.stack([(x + 1) * width / 2 + left - 0.5, (1 - y) * height / 2 + top - 0.5], -1)
