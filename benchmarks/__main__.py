"""Run every benchmark in turn: ``python -m benchmarks [NAME ...]``.

Each benchmark runs in its own process (so peak-memory figures do not mix) and prints its
own table with medians and ratios against its baseline.
"""

from __future__ import annotations

import subprocess
import sys

ALL = (
    "annotations",
    "segmentation",
    "meshes",
    "state",
    "serve",
    "batch",
    "scale",
    "render",
    "stock_restore",
)


def main(argv: list[str]) -> int:
    names = argv or list(ALL)
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(ALL)}")
        return 2
    status = 0
    for name in names:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        status |= subprocess.call([sys.executable, "-m", f"benchmarks.{name}"])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
