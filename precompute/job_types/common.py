"""Configuration every converter of precomputed data reads."""

from __future__ import annotations

import dataclasses
from typing import Any

from cryoet_ng.config import Config


def precompute_options(config: Config) -> dict[str, Any]:
    """``precompute.*`` without parallelism and memory budgets: they never change the bytes
    (tests compare outputs across brick sizes and the in-memory and on-disk point paths)."""
    options = dataclasses.asdict(config.precompute)
    for key in ("workers", "volume_brick", "points_in_memory"):
        options.pop(key, None)
    return options
