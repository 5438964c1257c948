"""End-to-end batch precompute of the demo sample tree: 1 worker vs 2.

    .venv/bin/python -m benchmarks.batch [--repeats 3] [--size demo] [--keep DIR]

Runs ``cryoet-ng precompute`` as a subprocess (exactly what a user runs) with
``--workers 1`` (in-process, the baseline) and ``--workers 2`` (Dask LocalCluster),
each ``--repeats`` times with ``--force``, then once more without ``--force`` (every job
skipped: the cost of fingerprinting alone). Peak RSS is sampled every 50 ms over the whole
process tree (the CLI, the Dask scheduler and nannies, every worker): the peak of the sum
and the peak of the largest single process. Prints medians and the 2-vs-1 ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

CLI = [sys.executable, "-m", "cryoet_ng_cli"]
MB = 1024 * 1024


@dataclass(frozen=True)
class Measure:
    seconds: float
    cpu: float  # user + system seconds of the whole (reaped) process tree
    rss_sum: int  # peak over time of the summed RSS of the process tree
    rss_max: int  # peak RSS of the largest single process
    counts: dict[str, int]
    jobs: list[dict]  # the report's per-job records


def measure(argv: list[str], report: Path) -> Measure:
    """Run ``argv`` and sample its process tree's memory until it exits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = psutil.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rss_sum = rss_max = 0
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            rss = [p.memory_info().rss for p in tree]
        except psutil.Error:  # a process ended between listing and sampling
            continue
        rss_sum, rss_max = max(rss_sum, sum(rss)), max(rss_max, max(rss))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    data = json.loads(report.read_text())
    return Measure(seconds, cpu, rss_sum, rss_max, data["counts"], data["jobs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", choices=["test", "demo"], default="demo")
    parser.add_argument("--keep", type=Path, help="work in this folder instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        work = args.keep or Path(tmp)
        data = work / "data"
        if not data.exists():
            subprocess.run([*CLI, "sample", str(data), "--size", args.size], check=True)
        size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"{args.size} sample tree: {size / MB:.0f} MB of inputs; {os.cpu_count()} cores")
        print(f"load average before: {load}")
        results: dict[str, list[Measure]] = {}
        for workers in (1, 2):
            out = work / f"out-{workers}"
            report = work / f"report-{workers}.json"
            base = [*CLI, "precompute", str(data), "--out", str(out), "--report", str(report)]
            base += ["--workers", str(workers)]
            runs = [measure([*base, "--force"], report) for _ in range(args.repeats)]
            results[f"{workers} worker{'s' if workers > 1 else ''}"] = runs
            results[f"{workers}w re-run (all skipped)"] = [measure(base, report)]
        print_table(results)


def print_table(results: dict[str, list[Measure]]) -> None:
    base = results["1 worker"]
    base_s = statistics.median(m.seconds for m in base)
    base_rss = statistics.median(m.rss_sum for m in base)
    header = f"{'run':<28}{'jobs':>6}{'wall s':>9}{'ratio':>7}{'cpu s':>8}"
    header += f"{'RSS sum MB':>12}{'ratio':>7}"
    print(header + f"{'RSS max MB':>12}")
    for name, runs in results.items():
        seconds = statistics.median(m.seconds for m in runs)
        rss_sum = statistics.median(m.rss_sum for m in runs)
        rss_max = statistics.median(m.rss_max for m in runs)
        cpu = statistics.median(m.cpu for m in runs)
        jobs = runs[0].counts["total"]
        print(
            f"{name:<28}{jobs:>6}{seconds:>9.2f}{seconds / base_s:>7.2f}{cpu:>8.1f}"
            f"{rss_sum / MB:>12.0f}{rss_sum / base_rss:>7.2f}{rss_max / MB:>12.0f}"
        )
    print(f"(medians of {len(base)} runs; ratios against '1 worker', the in-process baseline)")
    print("slowest jobs (seconds on their worker, first run):")
    for name in ("1 worker", "2 workers"):
        slowest = sorted(results[name][0].jobs, key=lambda j: -j["seconds"])[:4]
        print(
            f"  {name}: "
            + ", ".join(f"{j['job'].split('/')[-1]} {j['seconds']:.1f}" for j in slowest)
        )


if __name__ == "__main__":
    main()
