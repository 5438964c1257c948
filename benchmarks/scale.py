"""Portal-scale benchmarks, by section: ``python -m benchmarks.scale [SECTION ...] [-- ARGS]``.

Sections:

* ``volumes``: masks of 1000x1000x500 and 2000x2000x1000 voxels, peak RSS and wall time of
  one conversion, ours and the landed main's (:mod:`benchmarks.scale_volumes`; its options
  go after ``--``).
* ``tree``: a metadata-only tree of 100 datasets x 300 runs: main's full scan against the
  index build, refresh and lazy dataset load (:mod:`benchmarks.scale_tree`).
"""

from __future__ import annotations

import subprocess
import sys

SECTIONS = {"volumes": "benchmarks.scale_volumes", "tree": "benchmarks.scale_tree"}


def main(argv: list[str]) -> int:
    if "--" in argv:
        at = argv.index("--")
        names, rest = argv[:at], argv[at + 1 :]
    else:
        names, rest = argv, []
    names = names or list(SECTIONS)
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        print(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
        return 2
    status = 0
    for name in names:
        print(f"\n=== scale: {name} ===", flush=True)
        status |= subprocess.call([sys.executable, "-m", SECTIONS[name], *rest])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
