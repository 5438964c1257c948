"""Segment properties: what Neuroglancer's segment list shows for each segment.

Every segment gets a ``label`` (the object name, with the instance number for instance
masks); with the annotation's metadata (:class:`cryoet_ng.about.About`) also a
``description`` (status, method, authors, deposition), ``tags`` (``ground-truth`` or
``prediction``, the method type, ``curator-recommended``; Neuroglancer lists them as
``#tag`` and can filter on them) and the ``authors`` and ``method`` as string properties
(columns of the segment list). Format: neuroglancer ``src/datasource/precomputed/
segment_properties.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryoet_ng import atomic
from cryoet_ng.about import TAG_DESCRIPTIONS, About

PROPERTIES_DIR = "segment_properties"


def segment_labels(object_name: str, labels: list[int], instance: bool) -> list[str]:
    """``object_name`` for a binary mask, ``"<object_name> <label>"`` per instance."""
    return [f"{object_name} {label}" if instance else object_name for label in labels]


def about_properties(about: About, n: int) -> list[dict[str, Any]]:
    """The metadata properties of ``n`` segments of one annotation (all share them)."""
    tags = list(about.tags())
    return [
        {"id": "description", "type": "description", "values": [about.describe()] * n},
        {
            "id": "tags",
            "type": "tags",
            "tags": tags,
            "tag_descriptions": [TAG_DESCRIPTIONS[t] for t in tags],
            "values": [list(range(len(tags)))] * n,
        },
        {"id": "authors", "type": "string", "values": [about.authors_text] * n},
        {"id": "method", "type": "string", "values": [about.method_text] * n},
    ]


def write_segment_properties(
    root: Path, object_name: str, labels: list[int], instance: bool, about: About | None = None
) -> None:
    """``root/segment_properties/info``: inline ``label`` strings for every segment, and the
    annotation's metadata when ``about`` is given."""
    properties: list[dict[str, Any]] = [
        {"id": "label", "type": "label", "values": segment_labels(object_name, labels, instance)}
    ]
    if about is not None:
        properties += about_properties(about, len(labels))
    info: dict[str, Any] = {
        "@type": "neuroglancer_segment_properties",
        "inline": {"ids": [str(label) for label in labels], "properties": properties},
    }
    atomic.write_json(root / PROPERTIES_DIR / "info", info)
