"""Global viewer-state assembly: coordinate space, camera, layout, panels."""

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


def viewer_state(
    spacing: float,
    camera: Camera,
    layers: list[dict[str, Any]],
    selected: str | None,
    style: LayerStyle,
) -> dict[str, Any]:
    state: dict[str, Any] = {"dimensions": dimensions(spacing)}
    state.update(camera.to_json())
    state.update(
        {
            "layers": layers,
            "layout": style.layout,
            "showSlices": True,
            "showAxisLines": True,
            "crossSectionBackgroundColor": "#000000",
            "gpuMemoryLimit": style.gpu_memory_limit,
            "layerListPanel": {"visible": True},
        }
    )
    if selected is not None:
        state["selectedLayer"] = {"layer": selected, "visible": True}
    return state
