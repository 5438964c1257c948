"""Segment properties: a human-readable label per segment (Neuroglancer's segment list)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryoet_ng import atomic

PROPERTIES_DIR = "segment_properties"


def segment_labels(object_name: str, labels: list[int], instance: bool) -> list[str]:
    """``object_name`` for a binary mask, ``"<object_name> <label>"`` per instance."""
    return [f"{object_name} {label}" if instance else object_name for label in labels]


def write_segment_properties(
    root: Path, object_name: str, labels: list[int], instance: bool
) -> None:
    """``root/segment_properties/info`` with inline ``label`` strings for every segment."""
    info: dict[str, Any] = {
        "@type": "neuroglancer_segment_properties",
        "inline": {
            "ids": [str(label) for label in labels],
            "properties": [
                {
                    "id": "label",
                    "type": "label",
                    "values": segment_labels(object_name, labels, instance),
                }
            ],
        },
    }
    atomic.write_json(root / PROPERTIES_DIR / "info", info)
