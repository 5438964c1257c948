"""Global viewer-state assembly: coordinate space, camera, layout, panels and page title.

Chrome as the portal's own viewer arranges it (its ``state_generator.combine_json_layers``):
the layer list on the left with the selected layer's panel under it, open on the Rendering
tab (contrast, volume rendering, the particle sliders; never the Source tab's URL and
matrix), the Position tool palette along the bottom, no help or settings panel open, the
selection panel closed. Every key here round-trips through ``neuroglancer.ViewerState``
(tests/test_ngstate_state.py) and is read by the 2.41 client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cryoet_ng.config import LayerStyle
from ngstate.layers import dimensions

# 45 degrees about x: (sin 22.5°, 0, 0, cos 22.5°), as the portal's states.
PROJECTION_ORIENTATION = [math.sin(math.pi / 8), 0.0, 0.0, math.cos(math.pi / 8)]
# Cross-section panel size in pixels the volume is fitted to (a 4panel layout on a
# 1280x900 window gives panels of about 640x450).
PANEL_PIXELS = 400.0
# The portal's Position palette: coordinates of every dimension, along the bottom.
POSITION_PALETTE = {
    "side": "bottom",
    "row": 1,
    "size": 100,
    "visible": True,
    "query": "type:dimension",
}


@dataclass(frozen=True)
class Camera:
    size_xyz: tuple[int, int, int] | None  # tomogram voxels; None = leave to Neuroglancer

    def to_json(self) -> dict[str, Any]:
        if self.size_xyz is None:
            return {}
        largest = float(max(self.size_xyz))
        return {
            "position": [s / 2.0 for s in self.size_xyz],
            "crossSectionScale": largest / PANEL_PIXELS,
            "projectionScale": 1.1 * largest,
            "projectionOrientation": PROJECTION_ORIENTATION,
        }


@dataclass(frozen=True)
class Chrome:
    """The page around the panels."""

    title: str | None = None
    # Half-depth of the cross-section slab in tomogram voxels (annotations within it are
    # drawn in 2-D); None = Neuroglancer's default of 10 screen pixels.
    cross_section_depth: float | None = None


def page_title(template: str, run: str, dataset: str, tomogram: str) -> str:
    """``template`` with {run}, {dataset} and {tomogram} filled in (other braces left alone)."""
    values = {"{run}": run, "{dataset}": dataset, "{tomogram}": tomogram}
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def viewer_state(
    spacing: float,
    camera: Camera,
    layers: list[dict[str, Any]],
    selected: str | None,
    style: LayerStyle,
    chrome: Chrome | None = None,
) -> dict[str, Any]:
    chrome = chrome or Chrome()
    state: dict[str, Any] = {"dimensions": dimensions(spacing)}
    if chrome.title:
        state["title"] = chrome.title
    state.update(camera.to_json())
    if chrome.cross_section_depth is not None:
        state["crossSectionDepth"] = chrome.cross_section_depth
    state.update(
        {
            "layers": layers,
            "layout": style.layout,
            "showSlices": True,
            "showAxisLines": True,
            "crossSectionBackgroundColor": "#000000",
            "hideCrossSectionBackground3D": True,
            "gpuMemoryLimit": style.gpu_memory_limit,
            "layerListPanel": {"visible": True, "side": "left", "row": 0},
            "selection": {"visible": False},
        }
    )
    if selected is not None:
        state["selectedLayer"] = {
            "layer": selected,
            "visible": style.layer_side_panel,
            "side": "left",
            "row": 1,
        }
    if style.position_palette:
        state["toolPalettes"] = {"Position": dict(POSITION_PALETTE)}
    return state
