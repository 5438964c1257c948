"""Plain file writes for the sample tree.

The whole tree is built in a temporary folder and published by one rename
(:func:`cryoet_ng.atomic.atomic_directory`), so the per-file fsync of
:mod:`cryoet_ng.atomic` buys nothing here and costs more than the generation itself
on a busy disk (test size: ~60 fsyncs, ~1 s). A lost tree is regenerated from its seed.
JSON is formatted exactly as :func:`cryoet_ng.atomic.write_json` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_json(path: Path, obj: Any) -> None:
    """Sorted keys, 2-space indent, trailing newline: same input, same bytes."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
