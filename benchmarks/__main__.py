"""Run every benchmark in turn: ``python -m benchmarks [NAME ...]``.

Each benchmark prints its own table (medians, ratios against its baseline).
"""

from __future__ import annotations

import importlib
import sys

ALL = ("annotations", "segmentation", "state", "serve", "batch")


def main(argv: list[str]) -> int:
    names = argv or list(ALL)
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(ALL)}")
        return 2
    status = 0
    for name in names:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        status |= int(module.main([]) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
