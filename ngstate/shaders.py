"""GLSL of the layers' shaders: tomogram contrast and volume rendering, particles at their size.

Particles at their physical size
--------------------------------
Neuroglancer sizes a point marker in screen pixels (``setPointMarkerSize``), so a fixed
size is right at one zoom only. The point shader here computes the pixel size itself, per
point and per frame, from what every annotation shader of Neuroglancer has had since 2020
(checked in 2.41.2 and upstream ``main``): ``uModelViewProjection`` (annotation units ->
clip space), ``projectModelVectorToSubspace`` and ``getVertexPosition0()`` (the point), and,
in the program that draws point markers, ``uCircleParams.xy`` = 1 / viewport size in pixels.

* Screen scale ``s`` (pixels per annotation unit at the point): the three unit axes are
  pushed through the projection (with the perspective derivative in the 3-D view); for a
  similarity transform their squared pixel lengths sum to ``2 s^2`` whatever the rotation.
* Marker diameter = ``s x diameter``; in a cross-section, the sphere's section:
  ``2 s sqrt(r^2 - d^2)`` with ``d`` the point's distance to the plane (clip depth over the
  depth row's norm), and nothing when ``|d| >= r``. A particle therefore shows in exactly
  the slices it occupies, at the size it has there, at every zoom.
* The state's ``crossSectionDepth`` is set to the largest radius (plus oriented axes), so
  every slice that cuts a particle draws it.

Alternatives measured (README "Particles at their size"): ellipsoid annotations give the
same picture but need another annotation type in the precompute (the portal's outputs are
points with a ``diameter`` property) and are drawn as tessellated spheres in 3-D; fixed
pixel sizes are what the issue reported as wrong.

Oriented points are three line annotations (precompute: x, y, z axes from the centre, 1.5
diameters long). Their shader cannot know the viewport size (the line program has no
``uCircleParams``, the endpoint program no ``uLineParams``, and the user code is shared), so
the centre marker has a pixel size (slider) and the physical scale is the axes' length. In a
cross-section only particles whose centre lies within one radius of the plane are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass


def _f(value: float) -> str:
    """A GLSL float literal."""
    text = f"{value:.6g}"
    return text if any(c in text for c in ".e") else text + ".0"


def _rgb(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return f"vec3({_f(r)}, {_f(g)}, {_f(b)})"


# -- tomogram -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """An invlerp range and the slider window shown around it."""

    lower: float
    upper: float

    def directive(self, name: str, clamp: bool = True) -> str:
        width = self.upper - self.lower
        lo, hi = self.lower - width, self.upper + width
        params = f"range=[{self.lower:.6g}, {self.upper:.6g}], window=[{lo:.6g}, {hi:.6g}]"
        return f"#uicontrol invlerp {name}({params}{'' if clamp else ', clamp=false'})"


def _invlerp(name: str, window: Window | None, clamp: bool = True) -> str:
    if window is not None:
        return window.directive(name, clamp)
    return f"#uicontrol invlerp {name}{'' if clamp else '(clamp=false)'}"


def image_shader(contrast_2d: Window | None, contrast_3d: Window | None) -> str:
    """2-D slices: ``contrast`` (+ invert); volume rendering: ``contrast_3D``, inverted by default.

    Cryo-ET density is dark, so with ``invert_contrast_3D`` dense voxels (below the 3-D range)
    are opaque and the background (above it) transparent; ``hide_outside_limits_3D`` also makes
    transparent whatever is denser than the range (gold fiducials, edge artefacts).
    """
    return "\n".join(
        [
            _invlerp("contrast", contrast_2d),
            "#uicontrol bool invert_contrast checkbox(default=false)",
            _invlerp("contrast_3D", contrast_3d, clamp=False),
            "#uicontrol bool invert_contrast_3D checkbox(default=true)",
            "#uicontrol bool hide_outside_limits_3D checkbox(default=false)",
            "void main() {",
            "  if (VOLUME_RENDERING) {",
            "    float v = contrast_3D();",
            "    if (invert_contrast_3D) v = 1.0 - v;",
            "    if (hide_outside_limits_3D && v > 1.0) v = 0.0;",
            "    v = clamp(v, 0.0, 1.0);",
            "    emitRGBA(vec4(v, v, v, v));",
            "  } else {",
            "    float v = contrast();",
            "    emitGrayscale(invert_contrast ? 1.0 - v : v);",
            "  }",
            "}",
        ]
    )


# -- particles ------------------------------------------------------------------------------

# Screen scale and distance to the cross-section plane of the annotation's point, in the
# program that draws point markers (uCircleParams exists there).
_POINT_GEOMETRY = """
vec3 ngsPosition() { return projectModelVectorToSubspace(getVertexPosition0()); }
// Pixels per annotation unit at p, in the view plane (perspective derivative in 3-D).
float ngsPixelsPerUnit(vec3 p) {
  vec4 c = uModelViewProjection * vec4(p, 1.0);
  float sum = 0.0;
  for (int i = 0; i < 3; ++i) {
    vec4 d = uModelViewProjection[i];
    vec2 ndc = (d.xy * c.w - c.xy * d.w) / (c.w * c.w);
    vec2 px = ndc / (2.0 * uCircleParams.xy);
    sum += dot(px, px);
  }
  return sqrt(0.5 * sum);
}"""

# Distance (annotation units) of p to the cross-section plane; valid in orthographic slices.
_PLANE_DISTANCE = """
float ngsPlaneDistance(vec3 p) {
  vec4 c = uModelViewProjection * vec4(p, 1.0);
  vec3 depthRow = vec3(uModelViewProjection[0][2], uModelViewProjection[1][2],
                       uModelViewProjection[2][2]);
  return c.z / max(length(depthRow), 1e-12);
}"""


@dataclass(frozen=True)
class ParticleStyle:
    """What the particle shaders draw; sizes in nm, ``units_per_nm`` = annotation units per nm."""

    colour: str
    diameter_nm: float
    units_per_nm: float
    opacity: float = 1.0
    line_width: float = 2.0
    per_instance_colour: bool = False  # instance points: the baked `color` property

    def diameter_slider(self) -> str:
        top = max(100.0, 3.0 * self.diameter_nm)
        return (
            f"#uicontrol float diameter_nm slider(min=1, max={round(top)}, step=0.5, "
            f"default={_f(round(self.diameter_nm, 2))})"
        )

    def opacity_slider(self) -> str:
        return (
            f"#uicontrol float opacity slider(min=0, max=1, step=0.05, default={_f(self.opacity)})"
        )


def point_shader(style: ParticleStyle) -> str:
    """A ring at the particle's physical diameter (its section in 2-D), lightly filled."""
    colour = "prop_color()" if style.per_instance_colour else "defaultColor()"
    return "\n".join(
        [
            style.diameter_slider(),
            style.opacity_slider(),
            "#uicontrol float fill slider(min=0, max=1, step=0.05, default=0.15)",
            "#uicontrol float ring_px slider(min=0, max=8, step=0.5, default=2)",
            "#uicontrol float min_px slider(min=0, max=10, step=0.5, default=3)",
            f"const float UNITS_PER_NM = {_f(style.units_per_nm)};",
            _POINT_GEOMETRY,
            _PLANE_DISTANCE,
            "void main() {",
            f"  vec3 rgb = {colour};",
            "  vec3 p = ngsPosition();",
            "  float r = 0.5 * diameter_nm * UNITS_PER_NM;",
            "  if (!PROJECTION_VIEW) {",
            "    float d = ngsPlaneDistance(p);",
            "    if (abs(d) >= r) discard;",
            "    r = sqrt(r * r - d * d);",
            "  }",
            "  float diameter = max(2.0 * r * ngsPixelsPerUnit(p), min_px);",
            "  setPointMarkerColor(vec4(rgb, fill * opacity));",
            "  setPointMarkerBorderColor(vec4(rgb, opacity));",
            "  setPointMarkerBorderWidth(ring_px);",
            "  setPointMarkerSize(max(diameter - ring_px, 0.0));",
            "}",
        ]
    )


def oriented_shader(style: ParticleStyle) -> str:
    """Axes from the centre (z, the particle's reference axis, in the layer colour at full
    width; x and y lighter and thinner, or red/green/blue), a centre marker in the layer
    colour; in 2-D only particles cut by the slice."""
    return "\n".join(
        [
            style.diameter_slider(),
            style.opacity_slider(),
            f"#uicontrol float line_width slider(min=0.5, max=8, step=0.5, "
            f"default={_f(style.line_width)})",
            "#uicontrol float marker_px slider(min=0, max=30, step=1, default=10)",
            "#uicontrol bool rgb_axes checkbox(default=false)",
            f"const float UNITS_PER_NM = {_f(style.units_per_nm)};",
            _PLANE_DISTANCE,
            "void main() {",
            "  vec3 centre = projectModelVectorToSubspace(getVertexPosition0());",
            "  float r = 0.5 * diameter_nm * UNITS_PER_NM;",
            "  if (!PROJECTION_VIEW && abs(ngsPlaneDistance(centre)) >= r) discard;",
            "  vec3 layer = defaultColor();",
            "  vec3 axis = prop_line_color();",
            "  bool primary = axis.b > 0.5;",
            "  vec3 tint = primary ? layer : mix(layer, vec3(1.0), 0.45);",
            "  setLineColor(vec4(rgb_axes ? axis : tint, opacity));",
            "  setLineWidth(primary ? line_width : 0.6 * line_width);",
            "  setEndpointMarkerSize(primary ? marker_px : 0.0, 0.0);",
            "  setEndpointMarkerColor(vec4(layer, opacity));",
            "  setEndpointMarkerBorderWidth(1.0);",
            "  setEndpointMarkerBorderColor(vec4(0.0, 0.0, 0.0, opacity));",
            "}",
        ]
    )
