"""Portal scale: a metadata-only tree of 100 datasets x 300 runs (30,000 runs).

    .venv/bin/python -m benchmarks.scale tree [-- --datasets 100 --runs 300 --root DIR]

The ``tree`` section of :mod:`benchmarks.scale`: every operation runs in a fresh process
(peak RSS = that process's ``ru_maxrss``):

* baseline: the landed main's ``Catalogue.scan`` of the whole tree (main's
  ``cryoet_ng/catalogue.py``, taken with ``git show main:...``, imports only the standard
  library), and this branch's ``Catalogue.scan`` (a live scan through the store layer);
* index build (``cryoet_ng.index.refresh``, no previous index);
* incremental refresh after one run's annotation metadata changed (listings of every run,
  one document read);
* a catalogue of one dataset from the index (lazy open + first access), median of 5.

Each run has one tomogram (metadata and a tiny ``.zattrs``) and three annotations with
the sample tree's metadata documents; the data files themselves are not written. The
tree goes to /dev/shm by default (tmpfs), so the figures are CPU, not disk.
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

from cryoet_ng.catalogue import annotation_stem
from cryoet_ng.sample import metadata as md

SPACING = 13.48
VS = "VoxelSpacing13.480"
OBJECTS = (
    ("GO:0022626", "cytosolic ribosome"),
    ("GO:0005737", "cytoplasm"),
    ("GO:0016020", "membrane"),
)


def annotation_doc(run_key: str, ann_id: str, go: str, name: str, alignment: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "annotation_object": {"id": go, "name": name},
        "annotation_method": "template matching",
        "method_type": "automated",
        "ground_truth_status": False,
        "is_curator_recommended": False,
        "version": 1.0,
        "object_count": 100,
        "authors": md.DATASET_AUTHORS,
        "dates": md.dates(),
        "alignment_metadata_path": alignment,
        "deposition_id": 10300,
        "last_updated_at": 1700000000,
    }
    stem = annotation_stem(meta)
    folder = f"{run_key}/Reconstructions/{VS}/Annotations/{ann_id}"
    meta["files"] = [
        {
            "format": "ndjson",
            "shape": "Point",
            "path": f"{folder}/{stem}_point.ndjson",
            "is_visualization_default": True,
        }
    ]
    return meta


def generate(root: Path, n_datasets: int, n_runs: int) -> int:
    """Write the tree; returns the number of files. Documents are rendered once per
    dataset and string-substituted per run (about 5 s for 30,000 runs on tmpfs)."""
    files = 0
    for d in range(n_datasets):
        dataset_id = str(10000 + d)
        ds = root / dataset_id
        ds.mkdir(parents=True)
        (ds / "dataset_metadata.json").write_text(
            json.dumps(md.dataset_metadata(dataset_id, "Synthetic", "Homo sapiens", 9606))
        )
        files += 1
        template_key = f"{dataset_id}/@RUN@"
        alignment = f"{template_key}/Alignments/100/alignment_metadata.json"
        paths = {
            "omezarr_dir": f"{template_key}/Reconstructions/{VS}/Tomograms/100/@RUN@.zarr",
            "mrc_file": None,
            "alignment": alignment,
            "neuroglancer_config": None,
            "snapshot": None,
            "thumbnail": None,
        }
        tomo = json.dumps(md.tomogram_metadata("@RUN@", SPACING, (630, 630, 184), paths))
        anns = [
            (
                str(100 + i),
                json.dumps(annotation_doc(template_key, str(100 + i), go, nm, alignment)),
            )
            for i, (go, nm) in enumerate(OBJECTS)
        ]
        for r in range(n_runs):
            name = f"TS_{r:04d}"
            run = ds / name
            vs = run / "Reconstructions" / VS
            tdir = vs / "Tomograms" / "100"
            (tdir / f"{name}.zarr").mkdir(parents=True)
            (tdir / f"{name}.zarr" / ".zattrs").write_text("{}")
            (tdir / "tomogram_metadata.json").write_text(tomo.replace("@RUN@", name))
            (run / "run_metadata.json").write_text(json.dumps(md.run_metadata(name)))
            for ann_id, text in anns:
                adir = vs / "Annotations" / ann_id
                adir.mkdir(parents=True)
                doc = json.loads(text.replace("@RUN@", name))
                (adir / f"{annotation_stem(doc)}.json").write_text(text.replace("@RUN@", name))
            files += 3 + len(anns)
    return files


# -- operations, each run in a child process ------------------------------------------------


def op_main_scan(root: str, baseline: str) -> dict[str, Any]:
    sys.path.insert(0, baseline)
    from cryoet_ng.catalogue import Catalogue  # main's, from the baseline folder

    start = time.perf_counter()
    catalogue = Catalogue.scan(root)
    runs = sum(1 for _ in catalogue.runs())
    return {"seconds": time.perf_counter() - start, "runs": runs}


def op_scan(root: str) -> dict[str, Any]:
    from cryoet_ng.catalogue import Catalogue

    start = time.perf_counter()
    catalogue = Catalogue.scan(root)
    runs = sum(1 for _ in catalogue.runs())
    return {"seconds": time.perf_counter() - start, "runs": runs}


def op_build(root: str, out: str) -> dict[str, Any]:
    from cryoet_ng import index

    start = time.perf_counter()
    _, report = index.refresh(root, out, rebuild=True, keep=False)
    return {"seconds": time.perf_counter() - start, "runs": report.runs, "reads": report.reads}


def op_refresh(root: str, out: str) -> dict[str, Any]:
    from cryoet_ng import index

    start = time.perf_counter()
    _, report = index.refresh(root, out, keep=False)
    return {
        "seconds": time.perf_counter() - start,
        "runs": report.runs,
        "reads": report.reads,
        "runs_read": report.runs_read,
    }


def op_load(root: str, out: str, dataset_id: str) -> dict[str, Any]:
    from cryoet_ng.catalogue import Catalogue
    from cryoet_ng.store import open_store

    times = []
    for _ in range(5):
        start = time.perf_counter()
        catalogue = Catalogue.from_index(open_store(root), open_store(out))
        runs = len(catalogue.datasets[dataset_id].runs)
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "runs": runs}


OPS = {
    "main_scan": op_main_scan,
    "scan": op_scan,
    "build": op_build,
    "refresh": op_refresh,
    "load": op_load,
}


def child(op: str, *args: str) -> dict[str, Any]:
    """Run ``op`` in a fresh interpreter; adds its peak RSS."""
    code = (
        "import json, resource, sys; from benchmarks import scale_tree; "
        f"r = scale_tree.OPS[{op!r}](*{list(args)!r}); "
        "r['rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
        "print(json.dumps(r))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main_catalogue(folder: Path) -> str:
    """The landed main's catalogue module as a package of its own (standard library only)."""
    package = folder / "cryoet_ng"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    source = subprocess.run(
        ["git", "show", "main:cryoet_ng/catalogue.py"], capture_output=True, text=True, check=True
    ).stdout
    (package / "catalogue.py").write_text(source)
    return str(folder)


def tree_part(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="cryoet-ng-scale-", dir=args.root))
    try:
        root, out = base / "tree", base / "out"
        start = time.perf_counter()
        files = generate(root, args.datasets, args.runs)
        made = time.perf_counter() - start
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"tree: {args.datasets} x {args.runs} runs, {files} files, generated in {made:.1f} s")
        print(f"load average at start: {load}")
        baseline = main_catalogue(base / "main")
        rows = [("main: Catalogue.scan (baseline)", child("main_scan", str(root), baseline))]
        rows.append(("this branch: Catalogue.scan", child("scan", str(root))))
        rows.append(("index build", child("build", str(root), str(out))))
        rows.append(("index refresh, nothing changed", child("refresh", str(root), str(out))))
        chosen = str(10000 + args.datasets // 2)
        touched = root / chosen / f"TS_{args.runs // 2:04d}" / "Reconstructions" / VS
        touched = touched / "Annotations" / "100"
        meta = next(touched.glob("*.json"))
        meta.write_text(meta.read_text().replace("template matching", "template matching v2"))
        rows.append(("index refresh, one run changed", child("refresh", str(root), str(out))))
        rows.append(
            (
                "one dataset from the index (median of 5)",
                child("load", str(root), str(out), chosen),
            )
        )
        size = sum(p.stat().st_size for p in (out / "cryoet-ng-index").rglob("*") if p.is_file())
        one = next((out / "cryoet-ng-index" / "datasets").glob(f"{chosen}-*.json.gz"))
        print(f"index: {size / 1e6:.1f} MB, dataset {chosen}: {one.stat().st_size / 1e3:.0f} KB")
        reference = rows[0][1]["seconds"]
        print()
        print("| operation | wall s | vs main's scan | peak RSS MB | runs | documents read |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, r in rows:
            ratio = reference / r["seconds"] if r["seconds"] else float("inf")
            reads = r.get("reads", "")
            print(
                f"| {name} | {r['seconds']:.3f} | {ratio:.1f}x | {r['rss_mb']:.0f} | "
                f"{r['runs']} | {reads} |"
            )
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nload average at the end: {load}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--root", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = parser.parse_args(argv)
    tree_part(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
