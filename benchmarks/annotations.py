"""Point-annotation precompute benchmark: ndjson on disk -> finished sharded directory.

Run: ``.venv/bin/python -m benchmarks.annotations [--runs 3] [--points N] [--oriented N]``

Cases (each run in a fresh subprocess: time of ``precompute.points.convert`` only, peak RSS
of the process from ``ru_maxrss``), median of ``--runs``:

* 1,000,000 points, 200,000 oriented points (600,000 lines), 100,000 points;
* baseline: neuroglancer's ``write_annotations.AnnotationWriter`` on the same 100,000 points
  (``add_point`` per point, then ``write``), with the ratio of points per second;
* sharded key-value writes: tensorstore's ``neuroglancer_uint64_sharded`` kvstore (one Python
  ``write`` per key, one transaction) vs ``precompute.points.sharded.write_sharded``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET_POINTS_PER_S = 1_000_000
TARGET_SPEEDUP = 50
TARGET_RSS_MB = 600
TARGET_LEVEL0_BYTES = 1 << 20
SIZES = ("points", "oriented", "baseline-points")
TOMOGRAM = np.array([4000.0, 4000.0, 1000.0])  # voxels


def make_inputs(folder: Path, points: int, oriented: int, small: int) -> None:
    """Portal-style ndjson (3-decimal coordinates, 6-decimal rotation matrices)."""
    rng = np.random.default_rng(0)
    for name, count in (("points", points), ("points_small", small)):
        xyz = rng.uniform(0, TOMOGRAM - 1, (count, 3))
        lines = [
            f'{{"type": "point", "location": {{"x": {x:.3f}, "y": {y:.3f}, "z": {z:.3f}}}}}\n'
            for x, y, z in xyz.tolist()
        ]
        (folder / f"{name}.ndjson").write_text("".join(lines))
    xyz = rng.uniform(0, TOMOGRAM - 1, (oriented, 3))
    q, r = np.linalg.qr(rng.normal(size=(oriented, 3, 3)))  # random rotations
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    rotation = np.round(q, 6).tolist()
    lines = []
    for (x, y, z), r in zip(xyz.tolist(), rotation, strict=True):
        matrix = json.dumps(r)
        lines.append(
            f'{{"type": "orientedPoint", "location": {{"x": {x:.3f}, "y": {y:.3f}, '
            f'"z": {z:.3f}}}, "xyz_rotation_matrix": {matrix}}}\n'
        )
    (folder / "oriented.ndjson").write_text("".join(lines))


def run_one(kind: str, source: str, output: str, budget: str = "") -> dict[str, Any]:
    """Inside the subprocess: one conversion (or one baseline write); time and peak RSS."""
    from cryoet_ng.config import LayerStyle, PrecomputeConfig
    from precompute.jobs import AnnotationJob
    from precompute.points import convert

    shape = {"points": "Point", "oriented": "OrientedPoint", "baseline": "Point"}[kind]
    job = AnnotationJob(
        source=Path(source),
        shape=shape,
        output=Path(output),
        annotation_id="1",
        object_name="ribosome",
        voxel_spacing=10.0,
        volume_size_xyz=tuple(int(s) for s in TOMOGRAM),  # type: ignore[arg-type]
    )
    wall, cpu = time.perf_counter(), time.process_time()
    if kind == "baseline":
        count = _baseline(job)
    else:
        options = PrecomputeConfig(points_in_memory=int(budget)) if budget else PrecomputeConfig()
        count = convert(job, options, LayerStyle()).count
    return {
        "seconds": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "count": count,
    }


def _baseline(job: Any) -> int:
    """neuroglancer's own writer, fed from the same ndjson (parsed with json, as its users do)."""
    import neuroglancer
    from neuroglancer.write_annotations import AnnotationWriter

    space = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="m", scales=[1e-9] * 3)
    writer = AnnotationWriter(
        space,
        "point",
        properties=[
            neuroglancer.AnnotationPropertySpec(id="point_index", type="uint32"),
            neuroglancer.AnnotationPropertySpec(id="diameter", type="float32"),
            neuroglancer.AnnotationPropertySpec(id="name", type="uint8"),
            neuroglancer.AnnotationPropertySpec(id="color", type="rgb"),
        ],
    )
    count = 0
    with open(job.source) as handle:
        for i, line in enumerate(handle):
            loc = json.loads(line)["location"]
            point = [loc["x"], loc["y"], loc["z"]]
            writer.add_point(point, point_index=i, diameter=10.0, name=0, color=(255, 255, 255))
            count += 1
    writer.write(job.output)
    return count


def measure(kind: str, source: Path, output: Path, runs: int) -> dict[str, Any]:
    results = []
    for _ in range(runs):
        shutil.rmtree(output, ignore_errors=True)
        command = [sys.executable, "-m", "benchmarks.annotations", "--one", kind, str(source)]
        done = subprocess.run([*command, str(output)], capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    files = [p for p in output.rglob("*") if p.is_file()]
    level0 = (
        sum(p.stat().st_size for p in (output / "spatial0").iterdir())
        if kind != "baseline"
        else None
    )
    return {
        "seconds": statistics.median(r["seconds"] for r in results),
        "cpu": statistics.median(r["cpu"] for r in results),
        "rss_mb": max(r["rss_mb"] for r in results),
        "count": results[0]["count"],
        "bytes": sum(p.stat().st_size for p in files),
        "files": len(files),
        "level0": level0,
        "runs": len(results),
    }


def sharded_writes(folder: Path, keys: int = 100_000) -> tuple[float, float]:
    """(tensorstore us/key, write_sharded us/key) for ``keys`` 24-byte values."""
    import tensorstore as ts

    from precompute.points.sharded import ShardSpec, write_sharded

    values = np.random.default_rng(0).integers(0, 256, (keys, 24), dtype=np.uint8)
    ids = np.arange(keys, dtype=np.uint64)
    spec = ShardSpec.for_keys(ids)
    store = ts.KvStore.open(
        {
            "driver": "neuroglancer_uint64_sharded",
            "base": f"file://{folder}/ts/",
            "metadata": spec.to_json(),
        }
    ).result()
    start = time.perf_counter()
    txn = ts.Transaction()
    view = store.with_transaction(txn)
    for i in range(keys):
        view.write(struct.pack(">Q", i), values[i].tobytes())
    txn.commit_async().result()
    ours = time.perf_counter()
    write_sharded(folder / "ours", spec, ids, values.reshape(-1), np.full(keys, 24))
    end = time.perf_counter()
    return (ours - start) / keys * 1e6, (end - ours) / keys * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--oriented", type=int, default=200_000)
    parser.add_argument("--baseline-points", type=int, default=100_000)
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--generate", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument(
        "--large",
        type=int,
        default=0,
        help="only the bounded-memory case: N points in one file, from disk and in memory",
    )
    parser.add_argument("--cache", default="/tmp/vol-bench", help="where --large keeps its input")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return 0
    if args.large:
        from benchmarks.points_large import large

        return large(args.large, Path(args.cache))
    if args.generate:
        make_inputs(Path(args.generate), args.points, args.oriented, args.baseline_points)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-annotations-") as tmp:
        folder = Path(tmp)
        print(f"generating inputs in {folder} ...", flush=True)
        # In a subprocess: a child's ru_maxrss starts from its parent's size at fork, so the
        # parent must stay small for the children's peak RSS to mean anything.
        sizes = [f"--{name}={getattr(args, name.replace('-', '_'))}" for name in SIZES]
        command = [sys.executable, "-m", "benchmarks.annotations", "--generate", tmp, *sizes]
        subprocess.run(command, check=True)
        inputs = {
            name: folder / f"{name}.ndjson" for name in ("points", "points_small", "oriented")
        }
        rows = {
            f"{args.points:,} points": measure(
                "points", inputs["points"], folder / "o1", args.runs
            ),
            f"{args.oriented:,} oriented points": measure(
                "oriented", inputs["oriented"], folder / "o2", args.runs
            ),
            f"{args.baseline_points:,} points": measure(
                "points", inputs["points_small"], folder / "o3", args.runs
            ),
            f"{args.baseline_points:,} points, neuroglancer AnnotationWriter (baseline)": measure(
                "baseline", inputs["points_small"], folder / "o4", 1
            ),
        }
        ts_us, our_us = sharded_writes(folder)
    _print(rows, ts_us, our_us, args)
    return 0


def _print(rows: dict[str, dict[str, Any]], ts_us: float, our_us: float, args: Any) -> None:
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nload average {load} (1/5/15 min) on {os.cpu_count()} cores\n")
    header = f"{'case':<62} {'wall s':>7} {'cpu s':>6} {'points/s wall':>13} {'points/s cpu':>12} "
    print(header + f"{'RSS MB':>6} {'output MB':>9} {'files':>6} {'level-0 KB':>10}")
    speed = {}
    for name, r in rows.items():
        speed[name] = r["count"] / r["seconds"]
        level0 = f"{r['level0'] / 1024:.0f}" if r["level0"] is not None else "-"
        print(
            f"{name:<62} {r['seconds']:>7.3f} {r['cpu']:>6.2f} {speed[name]:>13,.0f} "
            f"{r['count'] / r['cpu']:>12,.0f} {r['rss_mb']:>6.0f} {r['bytes'] / 1e6:>9.1f} "
            f"{r['files']:>6,} {level0:>10}"
        )
    print("(medians; points/s cpu = points per CPU second of all threads, steadier under load)")
    names = list(rows)
    baseline = speed[names[3]]
    same, big_speed = speed[names[2]] / baseline, speed[names[0]] / baseline
    print(f"\nspeed-up vs baseline, same {args.baseline_points:,} points: {same:.0f}x")
    print(f"speed-up vs baseline, {args.points:,} points per second: {big_speed:.0f}x")
    print(
        f"sharded writes, 100,000 keys: tensorstore kvstore {ts_us:.2f} us/key, "
        f"write_sharded {our_us:.3f} us/key ({ts_us / our_us:.0f}x)"
    )
    big = rows[names[0]]
    checks = {
        f">= {TARGET_POINTS_PER_S:,} points/s ({names[0]})": speed[names[0]] >= TARGET_POINTS_PER_S,
        f">= {TARGET_SPEEDUP}x baseline": speed[names[0]] / baseline >= TARGET_SPEEDUP,
        f"peak RSS < {TARGET_RSS_MB} MB": big["rss_mb"] < TARGET_RSS_MB,
        "level-0 cell < 1 MB": all(
            r["level0"] is None or r["level0"] < TARGET_LEVEL0_BYTES for r in rows.values()
        ),
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    raise SystemExit(main())
