"""Configuration every converter of precomputed data reads."""

from __future__ import annotations

import dataclasses
from typing import Any

from cryoet_ng.config import Config

# How a batch runs and how much memory it uses, never what it writes: left out of every
# fingerprint, so changing one redoes nothing.
EXECUTION_KEYS = (
    "workers",
    "volume_brick",
    "points_in_memory",
    "job_timeout",
    "start_timeout",
    "in_process_bytes",
    "progress_seconds",
    "lock_wait",
)


def precompute_options(config: Config) -> dict[str, Any]:
    """``precompute.*`` without the execution keys: parallelism, memory budgets, timeouts,
    progress and locking never change the bytes (tests compare outputs across brick sizes
    and the in-memory and on-disk point paths)."""
    options = dataclasses.asdict(config.precompute)
    for key in EXECUTION_KEYS:
        options.pop(key, None)
    return options
