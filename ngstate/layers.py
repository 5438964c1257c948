"""Neuroglancer layer JSON: one typed options object per layer kind, one builder each.

The JSON is what Neuroglancer's own ``ViewerState`` parses (tests round-trip every state
through ``neuroglancer.ViewerState``); nothing private is added.

Placement of annotations stored at another voxel spacing than the tomogram: every
precomputed source declares its own coordinate space in metres (annotation ``info``
dimensions, volume ``resolution`` in nm, both exact), and Neuroglancer converts between a
source's space and the layer's output space by physical units. The source ``transform``
therefore names the tomogram's dimensions as its ``outputDimensions`` and keeps the identity
matrix: a point at binned voxel (x, y, z) lands at tomogram voxel (2x, 2y, 2z). A diagonal
``annotation_vs / tomogram_vs`` matrix on top of that scales twice: the real viewer showed a
2x-binned mask at 4x (tests/test_browser.py checks the placement pixel by pixel). No position
scaling is applied either (the portal multiplies the initial position by the ratio, which
moves the camera away from the centre).

What a biologist sees (issue 14): every layer opens on its Rendering tab with the shader code
folded away (only the controls), sources without the bounds-box subsource (no yellow frames),
masks opaque in 2-D without hover highlight, particles at their physical size
(``ngstate/shaders.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ngstate import shaders
from ngstate.shaders import ParticleStyle, Window

AXES = ("x", "y", "z")
ANGSTROM = 1e-10


def dimensions(spacing_angstrom: float) -> dict[str, list[Any]]:
    """Neuroglancer coordinate space x, y, z in metres at ``spacing_angstrom``."""
    scale = round(spacing_angstrom, 3) * ANGSTROM
    return {axis: [scale, "m"] for axis in AXES}


def source_transform(source_vs: float, tomogram_vs: float) -> dict[str, Any]:
    """Source transform putting data stored at ``source_vs`` onto the tomogram's voxels.

    The unit conversion from ``source_vs`` is Neuroglancer's (see the module docstring), so
    the matrix is the identity whatever the two spacings are.
    """
    del source_vs  # placement follows from the source's own physical coordinate space
    matrix = [[1.0 if col == row else 0.0 for col in range(4)] for row in range(3)]
    return {"outputDimensions": dimensions(tomogram_vs), "matrix": matrix}


def _source(url: str, transform: dict[str, Any] | None, subsources: dict[str, bool]) -> Any:
    """A source with only ``subsources`` enabled: never the "bounds" box of the data extent."""
    spec: dict[str, Any] = {"url": url}
    if transform is not None:
        spec["transform"] = transform
    spec.update({"subsources": subsources, "enableDefaultSubsources": False})
    return spec


@dataclass(frozen=True)
class ContrastLimits:
    lower: float
    upper: float

    def window(self) -> Window:
        return Window(self.lower, self.upper)


@dataclass(frozen=True)
class ImageLayerOptions:
    name: str
    url: str  # zarr://...
    contrast_2d: ContrastLimits | None  # None: no statistics anywhere (ngstate/contrast.py)
    contrast_3d: ContrastLimits | None
    gain: float
    visible: bool = True
    volume_rendering: bool = False
    depth_samples: int = 128


def image_layer(opts: ImageLayerOptions) -> dict[str, Any]:
    return {
        "type": "image",
        "name": opts.name,
        "source": _source(opts.url, None, {"default": True}),
        "tab": "rendering",
        "opacity": 1.0,
        "blend": "additive",
        "shader": shaders.image_shader(
            opts.contrast_2d.window() if opts.contrast_2d else None,
            opts.contrast_3d.window() if opts.contrast_3d else None,
        ),
        "codeVisible": False,
        "volumeRendering": "on" if opts.volume_rendering else "off",
        "volumeRenderingGain": opts.gain,
        "volumeRenderingDepthSamples": opts.depth_samples,
        "visible": opts.visible,
    }


@dataclass(frozen=True)
class SourceLayerOptions:
    """What every precomputed annotation or segmentation layer has."""

    name: str
    url: str  # precomputed://...
    transform: dict[str, Any]
    colour: str
    visible: bool


@dataclass(frozen=True)
class AnnotationLayerOptions(SourceLayerOptions):
    geometry: Literal["point", "line"]  # line = oriented points (three axis lines each)
    particle: ParticleStyle


def annotation_layer(opts: AnnotationLayerOptions) -> dict[str, Any]:
    shader = (
        shaders.oriented_shader(opts.particle)
        if opts.geometry == "line"
        else shaders.point_shader(opts.particle)
    )
    return {
        "type": "annotation",
        "name": opts.name,
        "source": _source(opts.url, opts.transform, {"default": True}),
        "tab": "rendering",
        "annotationColor": opts.colour,
        "shader": shader,
        "codeVisible": False,
        "visible": opts.visible,
    }


@dataclass(frozen=True)
class SegmentationLayerOptions(SourceLayerOptions):
    segments: tuple[int, ...]
    segment_colours: dict[str, str]
    mesh_render_scale: float = 2.0
    opacity_2d: float = 1.0  # "selectedAlpha": the shown segments in the cross-sections
    mesh_alpha: float = 1.0  # "objectAlpha": < 1 where the mesh encloses other shown layers
    hover_highlight: bool = False


def segmentation_layer(opts: SegmentationLayerOptions) -> dict[str, Any]:
    return {
        "type": "segmentation",
        "name": opts.name,
        # No "bounds" box; the mesh and the segment properties (label names) are wanted.
        "source": _source(
            opts.url, opts.transform, {"default": True, "mesh": True, "properties": True}
        ),
        "tab": "rendering",
        "segments": [str(s) for s in opts.segments],
        "segmentColors": opts.segment_colours,
        "segmentDefaultColor": opts.colour,
        "selectedAlpha": opts.opacity_2d,
        "notSelectedAlpha": 0.0,
        "objectAlpha": opts.mesh_alpha,
        "hoverHighlight": opts.hover_highlight,
        "meshRenderScale": opts.mesh_render_scale,
        "pick": False,
        "visible": opts.visible,
    }
