"""Candidates + decisions + colours -> the layer list of one state, in its order.

Order (``layers.layer_order``): ``points-first`` puts the point-like layers first, then the
tomogram, then the masks; ``tomogram-first`` the tomogram, then points, then masks. Points
first is the default because an unpatched Neuroglancer (2.41 and upstream) can drop a layer
while it restores the list: a not yet restored annotation layer cannot serialise itself, and
the URL-hash binding serialises the state on a timer during the restore. Restoring the
annotation layers first closes that window soonest (README, "Neuroglancer restore-order bug").
Within each group, layers keep the catalogue's order (annotation id, then shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryoet_ng.catalogue import Tomogram
from cryoet_ng.config import LayerStyle
from cryoet_ng.particles import Diameter, particle_diameter
from ngstate import colors, layers
from ngstate.candidates import Candidate
from ngstate.enclosure import enclosing
from ngstate.selection import Decision
from ngstate.shaders import ParticleStyle


@dataclass(frozen=True)
class Composed:
    layers: list[dict[str, Any]]
    # Half-depth of the cross-section slab in tomogram voxels: every particle (and oriented
    # axis) the slice cuts is drawn; None when there are no point layers.
    cross_section_depth: float | None


def diameter_of(c: Candidate, style: LayerStyle) -> Diameter:
    """The particle diameter of a point-like candidate (cryoet_ng/particles.py)."""
    diameter = particle_diameter(
        c.annotation.metadata.get("annotation_object"), style.default_diameter_nm
    )
    if diameter.origin == "fallback" and style.default_diameter_voxels is not None:
        spacing = c.annotation.voxel_spacing
        return Diameter(style.default_diameter_voxels * spacing, "fallback")
    return diameter


def compose(
    image: dict[str, Any] | None,
    candidates: list[Candidate],
    decisions: list[Decision],
    colours: list[str],
    tomogram: Tomogram,
    urls: list[str],
    style: LayerStyle,
) -> Composed:
    """The layer JSON, in order; ``urls[i]`` is candidate i's ``precomputed://`` source."""
    visible = [d.visible for d in decisions]
    # Masks and meshes (triangular and particle models) are segmentation layers.
    is_mask = [c.family == "volume" or c.is_mesh for c in candidates]
    occupancies = [c.summary.occupancy if c.summary is not None else None for c in candidates]
    # Masks and closed meshes can wall in other layers (Candidate.encloses).
    can_enclose = [c.encloses for c in candidates]
    encloses = enclosing(occupancies, can_enclose, visible, style.enclosure_threshold)
    points: list[dict[str, Any]] = []
    masks: list[dict[str, Any]] = []
    depth = 0.0
    for i, c in enumerate(candidates):
        common: dict[str, Any] = {
            "name": c.name,
            "url": urls[i],
            "transform": layers.source_transform(
                c.annotation.voxel_spacing, tomogram.voxel_spacing
            ),
            "colour": colours[i],
            "visible": visible[i],
        }
        if is_mask[i]:
            masks.append(_mask(c, common, encloses[i], style))
            continue
        spacing = c.annotation.voxel_spacing
        diameter = diameter_of(c, style)
        oriented = c.shape == "OrientedPoint"
        particle = ParticleStyle(
            colour=colours[i],
            diameter_nm=diameter.angstrom / 10.0,
            units_per_nm=10.0 / spacing,
            opacity=style.annotation_opacity,
            line_width=style.oriented_line_width,
            per_instance_colour=c.shape == "InstanceSegmentation" and "color" in c.properties,
        )
        reach = diameter.angstrom / 2.0
        if oriented:
            reach += style.oriented_line_factor * diameter.angstrom
        depth = max(depth, reach / tomogram.voxel_spacing)
        points.append(
            layers.annotation_layer(
                layers.AnnotationLayerOptions(
                    **common, geometry="line" if oriented else "point", particle=particle
                )
            )
        )
    tomo = [image] if image is not None else []
    ordered = (
        points + tomo + masks if style.layer_order == "points-first" else tomo + points + masks
    )
    return Composed(ordered, round(depth + 1.0, 1) if points else None)


def _mask(c: Candidate, common: dict[str, Any], encloses: bool, style: LayerStyle) -> dict:
    labels = c.labels
    # One label: the layer's colour. Several: the shared instance palette, so a mask's label
    # n and the instance picks of instance n have one colour (cryoet_ng/instance_colours.py).
    segment_colours = (
        colors.instance_label_colours(labels)
        if len(labels) > 1
        else {str(label): common["colour"] for label in labels}
    )
    scale = style.mesh_render_scale
    if c.layer_type == "orientedmesh":
        scale = style.oriented_mesh_render_scale
    return layers.segmentation_layer(
        layers.SegmentationLayerOptions(
            **common,
            segments=labels,
            segment_colours=segment_colours,
            mesh_render_scale=scale,
            opacity_2d=style.mask_opacity_2d,
            mesh_alpha=style.enclosing_mesh_alpha if encloses else 1.0,
            hover_highlight=style.mask_hover_highlight,
        )
    )
