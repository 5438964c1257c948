"""Mesh precompute benchmark: ours vs the portal's helper library, same inputs, same run.

    .venv/bin/python -m benchmarks.meshes [--cases oriented,triangular] [--repeat 3]

Cases (synthetic, deterministic):
* ``oriented``: 10,000 picks with random rotations in a 630x630x184 tomogram (13.48 Å), of
  a 5,000-triangle particle model (a bumpy ellipsoid about 20 nm long, in Å);
* ``triangular``: a 200,000-triangle closed surface (a bumpy torus spanning the tomogram),
  in voxels.

Each measurement runs in its own process; seconds are wall time from reading the inputs to
the finished output folder (imports before), CPU seconds that process's over all threads
(ours encodes on 2 threads, the helper on one), peak RSS its ``VmHWM``. "first view" is what a
viewer downloads to draw the coarsest level over the whole tomogram: the three JSON files,
the mesh shard's index and minishard index, the manifest and every coarsest-level fragment.

Baseline: cryoet-data-portal-neuroglancer 1.7.1 (not on the package index here), its source
taken from the git mirror (``--portal-src``, default the portal helper's mirror) and run in
its own virtualenv ``.venv-portal`` with the exact versions of its ``poetry.lock`` (numpy
< 2, igneous 4.30, cloud-volume 10.5), created on first use (``pip install --no-deps``).
It is called as the portal backend calls it (see ``benchmarks/portal_meshes.py``). Without
the mirror the baseline rows are skipped and say why.

A last table compares the simplifiers on the two inputs (why meshoptimizer's is the one used).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import load
from benchmarks.portal_meshes import peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
SPACING = 13.48
VOLUME = (630, 630, 184)
PICKS = 10_000
TEMPLATE_FACES = 5_000
SURFACE_FACES = 200_000
PORTAL_MIRROR = Path(
    os.environ.get(
        "CRYOET_NG_PORTAL_HELPER",
        "/work/.mirror/chanzuckerberg+cryoet-data-portal-neuroglancer/repo",
    )
)
PORTAL_VENV = ROOT / ".venv-portal"
TARGET_RATIO = 5.0
TARGET_RSS_MB = 2048
TARGET_FIRST_VIEW_MB = 2.0


# --- inputs -------------------------------------------------------------------------------


def _bumpy(vertices: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Vertices moved along their direction from the centre by smooth random bumps."""
    centre = vertices.mean(axis=0)
    radial = vertices - centre
    waves = rng.normal(size=(6, 3))
    bump = sum(np.sin(radial @ w / np.linalg.norm(radial, axis=1).max() * 6) for w in waves)
    return vertices + radial * (amount * bump / 6)[:, None]


def make_inputs(folder: Path, case: str) -> Path:
    import trimesh

    from precompute.meshes.glb import TriangleMesh
    from precompute.meshes.lods import simplify

    rng = np.random.default_rng(13)
    folder.mkdir(parents=True)
    if case == "oriented":
        ball = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
        vertices = _bumpy(ball.vertices * [60.0, 70.0, 100.0], rng, 0.15)  # Å
        model = simplify(TriangleMesh(vertices, ball.faces.astype(np.int64)), TEMPLATE_FACES)
        mesh = trimesh.Trimesh(model.vertices, model.faces, process=False)
        (folder / "template.glb").write_bytes(_glb(mesh))
        xyz = rng.uniform(0, 1, (PICKS, 3)) * (np.asarray(VOLUME) - 1)
        q = rng.normal(size=(PICKS, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        w, x, y, z = q.T
        rot = np.stack(
            [
                1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
            ],
            axis=1,
        )  # fmt: skip
        line = (
            '{"type": "orientedPoint", "location": {"x": %.2f, "y": %.2f, "z": %.2f}, '
            '"xyz_rotation_matrix": [[%.8f, %.8f, %.8f], [%.8f, %.8f, %.8f], '
            "[%.8f, %.8f, %.8f]]}\n"
        )
        values = np.hstack([xyz, rot])
        (folder / "picks.ndjson").write_text((line * PICKS) % tuple(values.ravel().tolist()))
    else:
        # A torus grid: 500 x 200 quads = 200,000 triangles, closed, no poles.
        turns = [np.linspace(0, 2 * np.pi, n, endpoint=False) for n in (500, 200)]
        u, v = np.meshgrid(*turns, indexing="ij")
        big, small = 220.0, 70.0
        r = small * (1 + 0.08 * np.sin(7 * u) * np.cos(5 * v))
        points = np.stack(
            [(big + r * np.cos(v)) * np.cos(u) + 315, (big + r * np.cos(v)) * np.sin(u) + 315,
             0.9 * r * np.sin(v) + 92], -1,
        ).reshape(-1, 3)  # fmt: skip
        i, j = np.meshgrid(np.arange(500), np.arange(200), indexing="ij")
        a = (i * 200 + j).ravel()
        b = (((i + 1) % 500) * 200 + j).ravel()
        c = (((i + 1) % 500) * 200 + (j + 1) % 200).ravel()
        d = (i * 200 + (j + 1) % 200).ravel()
        faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
        mesh = trimesh.Trimesh(points, faces, process=False)
        (folder / "surface.glb").write_bytes(_glb(mesh))
    return folder


def _glb(mesh: Any) -> bytes:
    data = mesh.export(file_type="glb")
    assert isinstance(data, bytes)
    return data


# --- children -----------------------------------------------------------------------------


def run_ours(case: str, source: Path, out: Path) -> dict[str, Any]:
    from cryoet_ng.config import MeshConfig, PrecomputeConfig
    from precompute.meshes import convert_oriented_mesh, convert_triangular_mesh

    start, cpu = time.perf_counter(), time.process_time()
    if case == "oriented":
        summary = convert_oriented_mesh(
            source / "template.glb",
            source / "picks.ndjson",
            out,
            voxel_spacing=SPACING,
            options=MeshConfig(),
            points=PrecomputeConfig(),
            label="particle",
            volume_size_xyz=VOLUME,
        )
    else:
        summary = convert_triangular_mesh(
            source / "surface.glb",
            out,
            voxel_spacing=SPACING,
            options=MeshConfig(),
            label="surface",
            volume_size_xyz=VOLUME,
        )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_rss_mb": peak_rss_mb(),
        "triangles": summary.extra["triangles"],
    }


def output_figures(out: Path) -> dict[str, Any]:
    """Output bytes, first-view bytes and triangles per level, read with cloud-volume."""
    from cloudvolume import CloudVolume

    cv = CloudVolume(f"precomputed://file://{out}", progress=False)
    manifest = cv.mesh.get_manifest(1)
    shard = (out / manifest.path).read_bytes()
    sharding = json.loads((out / "mesh" / "info").read_text())["sharding"]
    entries = np.frombuffer(shard[: 16 << sharding["minishard_bits"]], "<u8").reshape(-1, 2)
    minishards = int(np.sum(entries[:, 1] - entries[:, 0]))
    fragments = int(sum(np.sum(s) for s in manifest.fragment_offsets))
    manifest_bytes = len(shard) - 16 * len(entries) - minishards - fragments
    metadata = sum(
        (out / name).stat().st_size
        for name in ("info", "mesh/info", "segment_properties/info")
        if (out / name).exists()
    )
    coarsest = int(np.sum(manifest.fragment_offsets[-1]))
    triangles = [len(cv.mesh.get(1, lod=lod)[1].faces) for lod in range(manifest.num_lods)]
    return {
        "size_mb": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6,
        "first_view_mb": (metadata + 16 * len(entries) + minishards + manifest_bytes + coarsest)
        / 1e6,
        "levels": triangles,
    }


def measure(impl: str, case: str, source: Path, work: Path, python: Path | None) -> dict:
    out = work / f"out-{impl}"
    shutil.rmtree(out, ignore_errors=True)
    if impl == "ours":
        cmd = [sys.executable, "-m", "benchmarks.meshes", "--child", case]
        cmd += ["--source", str(source), "--out", str(out)]
        env = None
    else:
        assert python is not None
        script = str(ROOT / "benchmarks" / "portal_meshes.py")
        cmd = [str(python), script, case, str(source), str(out), str(SPACING)]
        env = {**os.environ, "PYTHONPATH": str(work.parent / "portal-src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} {case} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(output_figures(out))
    shutil.rmtree(out, ignore_errors=True)
    return result


# --- the portal's environment ---------------------------------------------------------------


def portal_environment(work: Path) -> tuple[Path | None, str]:
    """(python of the helper's virtualenv, note); the source is extracted into work."""
    if not (PORTAL_MIRROR / "HEAD").exists() and not (PORTAL_MIRROR / ".git").exists():
        return None, f"baseline skipped: no portal helper mirror at {PORTAL_MIRROR}"
    git = ["git", "-C", str(PORTAL_MIRROR)]
    src = work / "portal-src"
    src.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        [*git, "archive", "HEAD", "cryoet_data_portal_neuroglancer"], capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    lock = subprocess.run([*git, "show", "HEAD:poetry.lock"], capture_output=True, text=True)
    version = subprocess.run([*git, "show", "HEAD:pyproject.toml"], capture_output=True, text=True)
    label = next(
        (line.split('"')[1] for line in version.stdout.splitlines() if line.startswith("version")),
        "?",
    )
    python = PORTAL_VENV / "bin" / "python"
    stamp = PORTAL_VENV / ".installed"
    if not stamp.exists():
        pins = _main_group_pins(lock.stdout)
        requirements = work / "portal-requirements.txt"
        requirements.write_text("\n".join(pins) + "\n")
        print(f"creating {PORTAL_VENV} ({len(pins)} pinned packages; a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PORTAL_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "-r", str(requirements)]
        if subprocess.run(pip, check=False).returncode != 0:
            return None, "baseline skipped: the helper's pinned environment did not install"
        stamp.write_text("\n".join(pins))
    return python, f"cryoet-data-portal-neuroglancer {label} (its poetry.lock environment)"


def _main_group_pins(lock: str) -> list[str]:
    """``name==version`` of every package of the lock's main group."""
    pins, name, version = [], "", ""
    for line in lock.splitlines():
        if line == "[[package]]":
            name = version = ""
        elif line.startswith("name = "):
            name = line.split('"')[1]
        elif line.startswith("version = "):
            version = line.split('"')[1]
        elif line.startswith("groups = ") and '"main"' in line and name:
            pins.append(f"{name}=={version}")
    return pins


# --- simplifiers ----------------------------------------------------------------------------


def simplifier_rates(source: Path, case: str) -> list[tuple[str, int, float]]:
    """Seconds (best of 3) to simplify the case's glb to a quarter, per simplifier."""
    import zmesh

    from precompute.meshes.glb import read_glb
    from precompute.meshes.lods import simplify

    mesh = read_glb(source / ("template.glb" if case == "oriented" else "surface.glb"), 10**9)
    v32, f32 = mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32)
    target = len(mesh.faces) // 4
    candidates: dict[str, Any] = {
        "meshoptimizer (used)": lambda: simplify(mesh, target),
        "zmesh.simplify_fqmr": lambda: zmesh.simplify_fqmr(
            zmesh.Mesh(v32, f32, None), target_count=target, preserve_border=True
        ),
    }
    try:
        import fast_simplification

        candidates["fast-simplification"] = lambda: fast_simplification.simplify(
            v32, f32.astype(np.int32), target_count=target
        )
    except ImportError:
        pass
    try:
        import pyfqmr

        def run_pyfqmr() -> None:
            s = pyfqmr.Simplify()
            s.setMesh(mesh.vertices, mesh.faces)
            s.simplify_mesh(target_count=target, preserve_border=True, verbose=False)

        candidates["pyfqmr"] = run_pyfqmr
    except ImportError:
        pass
    rows = []
    for name, fn in candidates.items():
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        rows.append((name, len(mesh.faces), min(times)))
    return rows


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default="oriented,triangular")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours")
    parser.add_argument("--portal-repeat", type=int, default=1)
    parser.add_argument("--skip-portal", action="store_true")
    parser.add_argument("--child", choices=["oriented", "triangular"])
    parser.add_argument("--source")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_ours(args.child, Path(args.source), Path(args.out))))
        return
    loads = [load()]
    rows: list[tuple[str, dict[str, list[dict[str, Any]]]]] = []
    simplifiers: list[tuple[str, str, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="meshbench-") as tmp:
        python, note = (None, "baseline skipped (--skip-portal)")
        if not args.skip_portal:
            python, note = portal_environment(Path(tmp))
        for case in args.cases.split(","):
            work = Path(tmp) / case
            source = make_inputs(work / "in", case)
            runs = {"ours": [measure("ours", case, source, work, None) for _ in range(args.repeat)]}
            if python is not None:
                runs["portal"] = [
                    measure("portal", case, source, work, python) for _ in range(args.portal_repeat)
                ]
            rows.append((case, runs))
            simplifiers.extend((case, *row) for row in simplifier_rates(source, case))
            loads.append(load())
    print_tables(rows, simplifiers, loads, note)


def print_tables(rows: list, simplifiers: list, loads: list[str], note: str) -> None:
    print(f"\n{os.cpu_count()} cores; {' -> '.join(loads)}; baseline: {note}\n")
    print(
        f"{'case':11} {'impl':7} {'s (runs)':>12} {'CPU s':>7} {'RSS MB':>7} {'out MB':>7} "
        f"{'1st view MB':>11}  triangles per level"
    )
    for case, runs in rows:
        med = {}
        for impl, results in runs.items():
            keys = ("seconds", "cpu_s", "size_mb", "first_view_mb")
            m = {k: statistics.median(r[k] for r in results) for k in keys}
            m["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
            med[impl] = m
            levels = ", ".join(f"{n:,}" for n in results[0]["levels"])
            print(
                f"{case:11} {impl:7} {m['seconds']:8.2f} ({len(results)}) {m['cpu_s']:7.2f} "
                f"{m['peak_rss_mb']:7.0f} {m['size_mb']:7.1f} {m['first_view_mb']:11.2f}  "
                f"{levels}"
            )
        ours = med["ours"]
        checks = [
            (f"RSS {ours['peak_rss_mb']:.0f} MB < {TARGET_RSS_MB}", ours["peak_rss_mb"] < 2048),
            (
                f"first view {ours['first_view_mb']:.2f} MB < {TARGET_FIRST_VIEW_MB}",
                ours["first_view_mb"] < TARGET_FIRST_VIEW_MB,
            ),
        ]
        if "portal" in med:
            ratio = med["portal"]["seconds"] / ours["seconds"]
            cpu_ratio = med["portal"]["cpu_s"] / ours["cpu_s"]
            print(
                f"{case:11} {'ratio':7} x{ratio:.1f} faster (portal / ours, wall), "
                f"x{cpu_ratio:.1f} in CPU time"
            )
            checks.insert(0, (f"x{ratio:.1f} >= {TARGET_RATIO}", ratio >= TARGET_RATIO))
        marks = ", ".join(f"{c} {'ok' if good else 'MISSED'}" for c, good in checks)
        print(f"{case:11} {'targets':7} {marks}")
    print("\nsimplify to a quarter of the triangles, best of 3")
    for case, name, faces, seconds in simplifiers:
        print(f"{case:11} {name:22} {faces:>9,} triangles {seconds * 1e3:8.0f} ms")


if __name__ == "__main__":
    main()
