"""Configuration every converter of precomputed data reads."""

from __future__ import annotations

import dataclasses
from typing import Any

from cryoet_ng.config import Config


def precompute_options(config: Config) -> dict[str, Any]:
    """``precompute.*`` without ``workers``: parallelism never changes the bytes."""
    options = dataclasses.asdict(config.precompute)
    options.pop("workers", None)
    return options
