"""One very large point file: the bounded-memory (external sort) path against the in-memory one.

    .venv/bin/python -m benchmarks.annotations --large 20000000 [--cache /tmp/vol-bench]

The file (portal-style points, 3-decimal coordinates, uniformly spread in a 4000 x 4000 x
1000 tomogram) is generated once into the cache. Each conversion runs in its own process
(peak RSS from ru_maxrss): the default configuration (``points_in_memory`` 5,000,000: sorted
on disk) and the in-memory path (the budget raised above the file). Their outputs are then
compared file by file: they must be byte-identical. Target: peak < 2 GB for 20 M points.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.annotations import TOMOGRAM

TARGET_MB = 2000
BLOCK = 1_000_000


def make_file(path: Path, count: int) -> Path:
    if path.is_file():
        return path
    rng = np.random.default_rng(1)
    partial = path.with_suffix(".part")
    with open(partial, "w") as handle:
        for start in range(0, count, BLOCK):
            xyz = rng.uniform(0, TOMOGRAM - 1, (min(BLOCK, count - start), 3))
            lines = (
                f'{{"type": "point", "location": {{"x": {x:.3f}, "y": {y:.3f}, "z": {z:.3f}}}}}\n'
                for x, y, z in xyz.tolist()
            )
            handle.write("".join(lines))
    partial.replace(path)
    return path


def convert(source: Path, output: Path, budget: int | None) -> dict[str, float]:
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "-m", "benchmarks.annotations", "--one", "points", str(source)]
    command += [str(output)] + ([str(budget)] if budget else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    if files_a != files_b:
        return False
    return all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def large(count: int, cache: Path) -> int:
    cache.mkdir(parents=True, exist_ok=True)
    source = make_file(cache / f"points-{count}.ndjson", count)
    size = source.stat().st_size
    loads = [os.getloadavg()]
    rows = {
        "from disk (points_in_memory 5,000,000)": convert(source, cache / "out-disk", None),
        "in memory (points_in_memory above the file)": convert(
            source, cache / "out-memory", 10**12
        ),
    }
    loads.append(os.getloadavg())
    identical = same_tree(cache / "out-disk", cache / "out-memory")
    for name in ("out-disk", "out-memory"):
        shutil.rmtree(cache / name, ignore_errors=True)
    load = " -> ".join(" / ".join(f"{v:.1f}" for v in x) for x in loads)
    print(f"\n{count:,} points in one file ({size / 1e9:.2f} GB), load average {load}\n")
    print(f"{'path':<46} {'wall s':>7} {'cpu s':>7} {'peak MB':>8} {'bytes/point':>11}")
    for name, r in rows.items():
        print(
            f"{name:<46} {r['seconds']:>7.1f} {r['cpu']:>7.1f} {r['rss_mb']:>8.0f} "
            f"{r['rss_mb'] * 1e6 / count:>11.0f}"
        )
    disk = rows["from disk (points_in_memory 5,000,000)"]
    print(f"\noutputs byte-identical: {'yes' if identical else 'NO'}")
    verdict = "ok" if disk["rss_mb"] < TARGET_MB else "MISSED"
    print(f"target: peak < {TARGET_MB} MB from disk: {disk['rss_mb']:.0f} MB {verdict}")
    return 0 if identical else 1
