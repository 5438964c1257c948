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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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


@dataclass(frozen=True)
class ContrastLimits:
    lower: float
    upper: float

    def window(self) -> tuple[float, float]:
        """The ECDF window shown around the range: the range widened by its width each side."""
        width = self.upper - self.lower
        return self.lower - width, self.upper + width


@dataclass(frozen=True)
class ImageLayerOptions:
    name: str
    url: str  # zarr://...
    contrast_2d: ContrastLimits | None
    contrast_3d: ContrastLimits | None
    gain: float
    visible: bool = True


def _invlerp(name: str, limits: ContrastLimits | None) -> str:
    if limits is None:
        return f"#uicontrol invlerp {name}"
    lo, hi = limits.window()
    return (
        f"#uicontrol invlerp {name}(range=[{limits.lower:.6g}, {limits.upper:.6g}], "
        f"window=[{lo:.6g}, {hi:.6g}])"
    )


def image_shader(opts: ImageLayerOptions) -> str:
    """2D contrast ``contrast`` for the slices, ``contrast_3D`` for volume rendering."""
    return "\n".join(
        [
            _invlerp("contrast", opts.contrast_2d),
            _invlerp("contrast_3D", opts.contrast_3d),
            "void main() {",
            "  if (VOLUME_RENDERING) {",
            "    float v = contrast_3D();",
            "    emitRGBA(vec4(v, v, v, v));",
            "  } else {",
            "    emitGrayscale(contrast());",
            "  }",
            "}",
        ]
    )


def image_layer(opts: ImageLayerOptions) -> dict[str, Any]:
    return {
        "type": "image",
        "name": opts.name,
        "source": opts.url,
        "opacity": 1.0,
        "blend": "additive",
        "shader": image_shader(opts),
        "volumeRendering": "off",
        "volumeRenderingGain": opts.gain,
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
    # Property ids present in the output's info; the shader only uses those that exist,
    # because a shader naming a missing property does not compile.
    properties: frozenset[str] = field(default_factory=frozenset)
    per_instance_colour: bool = False  # instance points: colour from the `color` property
    default_size: float = 10.0  # marker size in pixels when there is no diameter property


def annotation_shader(opts: AnnotationLayerOptions) -> str:
    props = opts.properties
    lines = ["#uicontrol float size_scale slider(min=0.1, max=4.0, default=1.0)", "void main() {"]
    if opts.geometry == "line":
        colour = "prop_line_color()" if "line_color" in props else "defaultColor()"
        lines += [f"  setColor({colour});", "  setLineWidth(2.0 * size_scale);"]
        lines.append("  setEndpointMarkerSize(0.0, 0.0);")
    else:
        use_prop = opts.per_instance_colour and "color" in props
        colour = "prop_color()" if use_prop else "defaultColor()"
        size = "prop_diameter()" if "diameter" in props else f"{opts.default_size:.1f}"
        lines += [f"  setColor({colour});", f"  setPointMarkerSize({size} * size_scale);"]
    lines.append("}")
    return "\n".join(lines)


def annotation_layer(opts: AnnotationLayerOptions) -> dict[str, Any]:
    return {
        "type": "annotation",
        "name": opts.name,
        "source": {"url": opts.url, "transform": opts.transform},
        "annotationColor": opts.colour,
        "shader": annotation_shader(opts),
        "visible": opts.visible,
    }


@dataclass(frozen=True)
class SegmentationLayerOptions(SourceLayerOptions):
    segments: tuple[int, ...]
    segment_colours: dict[str, str]
    mesh_render_scale: float = 2.0


def segmentation_layer(opts: SegmentationLayerOptions) -> dict[str, Any]:
    return {
        "type": "segmentation",
        "name": opts.name,
        "source": {
            "url": opts.url,
            "transform": opts.transform,
            # No "bounds" box; the mesh and the segment properties (label names) are wanted.
            "subsources": {"default": True, "mesh": True, "properties": True},
            "enableDefaultSubsources": False,
        },
        "segments": [str(s) for s in opts.segments],
        "segmentColors": opts.segment_colours,
        "segmentDefaultColor": opts.colour,
        "meshRenderScale": opts.mesh_render_scale,
        "pick": False,
        "visible": opts.visible,
    }
