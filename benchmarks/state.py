"""Time to build one tomogram's viewer state for a run with 20 annotations.

    .venv/bin/python -m benchmarks.state [--repeat N]

* warm: catalogue in memory (summaries and info files are still read from disk);
* warm, summary cache cleared: the same, re-reading and parsing every summary;
* cold: ``Catalogue.scan`` of the tree, then the state (summary cache cleared);
* baseline: the same 20 layers as plain dict literals from the in-memory catalogue
  (metadata flag for visibility, no summaries, no selection): the portal's approach.
Targets: warm < 5 ms, cold < 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.config import LayerStyle, SelectionConfig
from cryoet_ng.layout import Layout
from cryoet_ng.sample.annotations import AnnotationObject, Source, annotation_spec
from cryoet_ng.sample.builder import TreeBuilder
from cryoet_ng.sample.outputs import annotation_info, write_output, write_tomogram_stats
from cryoet_ng.summaries import Grid, Occupancy, Summary
from ngstate import StateOptions, build_state
from ngstate.summary_reader import SummaryReader

SPACING, SIZE = 13.48, (960, 928, 500)
URL = "http://127.0.0.1:8000/data"


def make_tree(root: Path, n: int = 20) -> None:
    """Run 10000/TS_026 (metadata only) with ``n`` annotations, alternately points and masks,
    and stand-in outputs with summaries (points: 500 random; masks: random fractions)."""
    tree = TreeBuilder(root)
    tree.dataset("10000")
    written = tree.run("10000", "TS_026", SIZE, SPACING)
    tree.tomogram(written)
    for i in range(n):
        spec = annotation_spec(
            AnnotationObject(f"GO:{i // 3:07d}", f"object {i // 3}"),
            Source("Point" if i % 2 == 0 else "SegmentationMask", True),
            method_type=["manual", "automated", "hybrid"][i % 3],
            ground_truth=i % 4 == 0,
        )
        tree.annotation(written, spec)
    catalogue = Catalogue.scan(root)
    run = catalogue.run("10000", "TS_026")
    assert run is not None
    rng = np.random.default_rng(0)
    extent = tuple(s * SPACING * 1e-10 for s in SIZE)
    grid = Grid.for_extent(extent)  # type: ignore[arg-type]
    for annotation in run.annotations:
        shape = annotation.files[0].shape
        if shape == "Point":
            xyz = rng.uniform(0, 1, (500, 3)) * np.asarray(extent)
            summary = Summary("annotation", 500, None, Occupancy.of_points(grid, xyz))
            write_output(root, run, annotation, shape, info=annotation_info(shape), summary=summary)
        else:
            values = np.clip(rng.normal(0.1, 0.3, grid.size), 0, 1)
            occupancy = Occupancy(grid, "fraction", values)
            summary = Summary("segmentation", 1000, None, occupancy, {1: 1000})
            write_output(root, run, annotation, shape, summary=summary)
    stats = {"contrast_2d": [-1.0, 1.0], "contrast_3d": [0.0, 2.0]}
    write_tomogram_stats(root, run, run.tomograms[0], stats)


def baseline(catalogue: Catalogue, root: Path) -> dict[str, Any]:
    run = catalogue.run("10000", "TS_026")
    assert run is not None
    tomogram = run.tomograms[0]
    dims = {a: [SPACING * 1e-10, "m"] for a in "xyz"}
    layers: list[dict[str, Any]] = [
        {"type": "image", "name": run.name, "source": f"zarr://{URL}/{tomogram.omezarr_relative}"}
    ]
    for annotation in run.annotations_for(tomogram):
        for f in annotation.files:
            out = Layout(root).annotation_output(run, annotation, f.shape)
            url = f"precomputed://{URL}/{out.relative_to(root).as_posix()}"
            kind = "annotation" if f.shape == "Point" else "segmentation"
            layers.append(
                {
                    "type": kind,
                    "name": f"{annotation.id} {annotation.object_name} {f.shape.lower()}",
                    "source": {"url": url, "transform": {"outputDimensions": dims}},
                    "visible": bool(f.is_visualization_default),
                    "annotationColor": "#ffffff",
                }
            )
    return {"dimensions": dims, "layers": layers, "layout": "4panel"}


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_tree(root)
        options = StateOptions(URL, root, root, style=LayerStyle(), selection=SelectionConfig())
        catalogue = Catalogue.scan(root)
        built = build_state(catalogue, "10000", "TS_026", None, options)
        assert len(built.state["layers"]) == 21, len(built.state["layers"])
        reader = SummaryReader()  # kept across builds, as the server keeps its own
        warm = median_ms(
            lambda: build_state(catalogue, "10000", "TS_026", None, options, reader), args.repeat
        )
        uncached = median_ms(
            lambda: build_state(catalogue, "10000", "TS_026", None, options, SummaryReader()),
            args.repeat,
        )
        cold = median_ms(
            lambda: build_state(
                Catalogue.scan(root), "10000", "TS_026", None, options, SummaryReader()
            ),
            args.repeat,
        )
        base = median_ms(lambda: baseline(catalogue, root), args.repeat)
        base_cold = median_ms(lambda: baseline(Catalogue.scan(root), root), args.repeat)
    header = ("case (20 annotations)", "median ms", "baseline ms", "ratio", "target")
    print(f"{header[0]:<34}{header[1]:>10}{header[2]:>13}{header[3]:>8}{header[4]:>9}")
    for label, ours, base_ms, target in (
        ("warm (catalogue in memory)", warm, base, "< 5"),
        ("warm, summary cache cleared", uncached, base, "-"),
        ("cold (scan + build)", cold, base_cold, "< 50"),
    ):
        print(f"{label:<34}{ours:>10.2f}{base_ms:>13.3f}{ours / base_ms:>8.1f}{target:>9}")


if __name__ == "__main__":
    main()
