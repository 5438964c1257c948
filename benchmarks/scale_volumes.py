"""Masks at portal scale: peak memory and wall time of one mask conversion, ours and main's.

    .venv/bin/python -m benchmarks.scale_volumes [--sizes 1000x1000x500,2000x2000x1000]
        [--kinds binary,instance] [--main /work/main] [--main-sizes 1000x1000x500]
        [--cache /tmp/vol-bench] [--keep]

Inputs are synthetic and deterministic, generated once into ``--cache`` (zarr, 256^3 chunks
like the portal's) chunk by chunk, at the same density of objects at every size so that
memory figures compare: "binary" is membranes (vesicle shells 3 voxels thick and wavy
sheets), "instance" solid blobs with one label each (uint16). Each conversion is the real
converter (``precompute.segmentation.convert``: pyramid, meshes, properties, summary) in its
own process, with the code of this tree or of ``--main`` (the landed baseline) first on
``sys.path``; peak RSS is the sum over that process and its children (meshing workers),
sampled every 50 ms. Target: peak < 4 GB, independent of the mask size.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
OURS = HERE.parent
SPACING = 13.48
CHUNK = 256
TARGET_MB = 4000
# Objects per 1000 x 1000 x 500 voxels; scaled with the volume.
VESICLES, SHEETS, BLOBS = 150, 2, 300


def parse_size(text: str) -> tuple[int, int, int]:
    x, y, z = (int(v) for v in text.lower().split("x"))
    return x, y, z


def objects(kind: str, size_xyz: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Centres (z, y, x), radii and labels of the synthetic objects, deterministic."""
    scale = np.prod(size_xyz) / (1000 * 1000 * 500)
    shape = np.array(size_xyz[::-1], float)
    rng = np.random.default_rng(17)
    count = round((VESICLES if kind == "binary" else BLOBS) * scale)
    radius = rng.uniform(15, 60, count) if kind == "binary" else rng.uniform(8, 40, count)
    centre = rng.uniform(0, 1, (count, 3)) * shape
    sheets = rng.uniform(0.15, 0.85, (round(SHEETS * scale ** (1 / 3)), 3))
    return {"centre": centre, "radius": radius, "sheets": sheets}


def chunk_labels(
    kind: str, found: dict[str, np.ndarray], lo: np.ndarray, hi: np.ndarray, shape: np.ndarray
) -> np.ndarray:
    """Labels of the box ``[lo, hi)`` (z, y, x)."""
    dtype = np.uint8 if kind == "binary" else np.uint16
    out = np.zeros(hi - lo, dtype)
    reach = found["radius"] + 3
    near = np.all(
        (found["centre"] + reach[:, None] > lo) & (found["centre"] - reach[:, None] < hi), 1
    )
    for i in np.flatnonzero(near):
        c, r = found["centre"][i], found["radius"][i]
        a = np.maximum(np.floor(c - r - 3).astype(int), lo)
        b = np.minimum(np.ceil(c + r + 3).astype(int), hi)
        z, y, x = np.ogrid[a[0] : b[0], a[1] : b[1], a[2] : b[2]]
        d = np.sqrt((z + 0.5 - c[0]) ** 2 + (y + 0.5 - c[1]) ** 2 + (x + 0.5 - c[2]) ** 2)
        view = out[
            a[0] - lo[0] : b[0] - lo[0], a[1] - lo[1] : b[1] - lo[1], a[2] - lo[2] : b[2] - lo[2]
        ]
        if kind == "binary":
            view[np.abs(d - r) < 1.5] = 1
        else:
            view[d < r] = i % 65535 + 1
    if kind == "binary":
        z, y, x = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        for fz, fy, phase in found["sheets"]:
            wave = np.sin(x / (fy * 300 + 50) + phase * 6) + np.cos(y / (phase * 300 + 80))
            surface = fz * shape[0] + 0.03 * shape[0] * wave
            out |= (np.abs(z - surface) < 2).astype(dtype)
    return out


def make_mask(cache: Path, kind: str, size_xyz: tuple[int, int, int]) -> Path:
    """The mask as OME-Zarr (generated once, chunk by chunk, reused while the cache lasts)."""
    import tensorstore as ts

    folder = cache / f"{kind}-{'x'.join(map(str, size_xyz))}.zarr"
    if (folder / "done").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    multiscales = [{"version": "0.4", "datasets": [{"path": "0"}], "axes": []}]
    (folder / ".zattrs").write_text(json.dumps({"multiscales": multiscales}))
    shape = np.array(size_xyz[::-1])
    dtype = "|u1" if kind == "binary" else "<u2"
    meta = {"shape": shape.tolist(), "chunks": [CHUNK] * 3, "dtype": dtype}
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(folder / "0")}}
    metadata = {**meta, "dimension_separator": "/"}
    store = ts.open({**spec, "metadata": metadata, "create": True}).result()
    found = objects(kind, size_xyz)
    for z in range(0, shape[0], CHUNK):
        for y in range(0, shape[1], CHUNK):
            for x in range(0, shape[2], CHUNK):
                lo = np.array([z, y, x])
                hi = np.minimum(lo + CHUNK, shape)
                data = chunk_labels(kind, found, lo, hi, shape.astype(float))
                store[z : hi[0], y : hi[1], x : hi[2]].write(data).result()
    (folder / "done").write_text("")
    return folder


def child(args: argparse.Namespace) -> None:
    """One conversion with the code at ``args.code``; prints a JSON line."""
    sys.path.insert(0, args.code)
    spec = importlib.util.spec_from_file_location("_memory", HERE / "memory.py")
    assert spec is not None and spec.loader is not None
    memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memory)

    from cryoet_ng.config import PrecomputeConfig
    from precompute.jobs import AnnotationJob
    from precompute.segmentation import convert

    out = Path(args.out)
    shape = "SegmentationMask" if args.kind == "binary" else "InstanceSegmentationMask"
    job = AnnotationJob(
        source=Path(args.source),
        shape=shape,
        output=out / f"1-thing-1.0_{shape.lower()}",
        annotation_id="1",
        object_name="thing",
        voxel_spacing=SPACING,
        volume_size_xyz=None,
    )
    start = time.perf_counter()
    with memory.TreePeak() as peak:
        summary = convert(job, PrecomputeConfig(workers=args.workers))
    result = {
        "wall_s": time.perf_counter() - start,
        "cpu_s": peak.cpu_s,
        "peak_mb": peak.mb,
        "labels": len(summary.labels or {}),
        "out_mb": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6,
    }
    print(json.dumps(result))


def measure(code: Path, kind: str, source: Path, work: Path, workers: int) -> dict[str, Any]:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, str(HERE / "scale_volumes.py"), "--child", "--code", str(code)]
    cmd += ["--kind", kind, "--source", str(source), "--out", str(out)]
    cmd += ["--workers", str(workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=str(work))
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load() -> str:
    return "load " + ", ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000x1000x500,2000x2000x1000")
    parser.add_argument("--kinds", default="binary,instance")
    parser.add_argument("--main", default="/work/main", help="landed code (baseline); '' = none")
    parser.add_argument("--main-sizes", default="1000x1000x500")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--cache", default="/tmp/vol-bench")
    parser.add_argument("--keep", action="store_true", help="keep generated masks")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--code")
    parser.add_argument("--kind")
    parser.add_argument("--source")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    run(args)


def run(args: argparse.Namespace) -> None:
    cache = Path(args.cache)
    main_sizes = set(args.main_sizes.split(",")) if args.main else set()
    rows = []
    for size_text in args.sizes.split(","):
        size = parse_size(size_text)
        for kind in args.kinds.split(","):
            started = time.perf_counter()
            source = make_mask(cache, kind, size)
            made = time.perf_counter() - started
            print(f"{kind} {size_text}: input ready ({made:.0f} s), {load()}", flush=True)
            codes = [("ours", OURS)] + (
                [("main", Path(args.main))] if size_text in main_sizes else []
            )
            for name, code in codes:
                before = load()
                result = measure(code, kind, source, cache / "work", args.workers)
                rows.append((size_text, kind, name, result, before, load()))
                print(f"  {name}: {json.dumps(result)}", flush=True)
            if not args.keep:
                shutil.rmtree(source, ignore_errors=True)
    print_table(rows)


def print_table(rows: list) -> None:
    print(f"\nmask conversion (pyramid + meshes + summary), {os.cpu_count()} cores\n")
    head = f"{'size (x y z)':16} {'kind':9} {'code':5} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}"
    print(head + f" {'labels':>6} {'out MB':>7}  load before -> after")
    for size, kind, name, r, before, after in rows:
        if "error" in r:
            print(f"{size:16} {kind:9} {name:5} failed: {r['error']}")
            continue
        print(
            f"{size:16} {kind:9} {name:5} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {r['peak_mb']:8.0f}"
            f" {r['labels']:6d} {r['out_mb']:7.1f}  {before} -> {after}"
        )
    ours = [r for _, _, name, r, _, _ in rows if name == "ours" and "error" not in r]
    if ours:
        worst = max(r["peak_mb"] for r in ours)
        verdict = "ok" if worst < TARGET_MB else "MISSED"
        print(f"\ntarget: peak < {TARGET_MB} MB at every size: worst {worst:.0f} MB {verdict}")


if __name__ == "__main__":
    main()
