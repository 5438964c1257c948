"""A tree with broken inputs: everything else is converted, each failure is reported."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.layout import summary_path
from cryoet_ng_cli import main as cli

for _module in ("precompute.points", "precompute.segmentation", "precompute.tomogram"):
    pytest.importorskip(_module)


def _files(tree: Path, shape: str, fmt: str) -> list[Path]:
    """Input files of ``shape`` in ``fmt``, one per annotation, in a stable order."""
    catalogue = Catalogue.scan(tree)
    return sorted(
        f.path
        for a in catalogue.runs()
        for ann in a.annotations
        for f in ann.files
        if f.shape == shape and f.format == fmt and f.path.exists()
    )


def _rewrite_record(path: Path, index: int, change) -> None:
    lines = path.read_text().splitlines()
    record = json.loads(lines[index])
    change(record)
    lines[index] = json.dumps(record)  # json.dumps writes NaN as the bare token NaN
    path.write_text("\n".join(lines) + "\n")


def _float_mask(folder: Path) -> None:
    """Rewrite every level of an OME-Zarr mask as float32 (same chunks), with tensorstore."""
    import tensorstore as ts

    for level in sorted(p for p in folder.iterdir() if (p / ".zarray").exists()):
        spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(level)}}
        source = ts.open(spec).result()
        data, chunks = source.read().result(), source.chunk_layout.read_chunk.shape
        shutil.rmtree(level)
        target = ts.open(
            spec | {"metadata": {"dtype": "<f4", "shape": data.shape, "chunks": chunks}},
            create=True,
        ).result()
        target.write(data.astype(np.float32) * 0.5).result()


@pytest.fixture(scope="module")
def broken(
    sample_root: Path, copy_sample: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory
) -> dict:
    base = tmp_path_factory.mktemp("broken")
    tree = copy_sample(base / "data")
    # Each breakage hits a different annotation; remember the file each one must name.
    points = _files(tree, "Point", "ndjson")
    oriented = _files(tree, "OrientedPoint", "ndjson")
    masks = _files(tree, "SegmentationMask", "zarr")
    assert len(points) >= 2 and oriented and masks
    expected: dict[str, Path] = {}

    lines = points[0].read_text().splitlines()
    lines[2] = '{"type": "point", "location": {"x": 1, '  # truncated record on line 3
    points[0].write_text("\n".join(lines) + "\n")
    expected["malformed"] = points[0]

    _rewrite_record(points[1], 0, lambda r: r["location"].update(x=math.nan))
    expected["nan"] = points[1]

    def scale(record: dict) -> None:
        record["xyz_rotation_matrix"] = (2 * np.asarray(record["xyz_rotation_matrix"])).tolist()

    _rewrite_record(oriented[0], 0, scale)
    expected["rotation"] = oriented[0]

    _float_mask(masks[0])
    expected["float mask"] = masks[0]

    touched = {p.parent for p in expected.values()}
    metadata = next(
        p for p in sorted(tree.rglob("Annotations/*/*[0-9].json")) if p.parent not in touched
    )
    metadata.write_text(metadata.read_text()[:40])
    expected["metadata"] = metadata

    total_clean = len(_files(sample_root, "Point", "ndjson"))  # sanity: the copy was complete
    assert total_clean == len(points)
    report_path = base / "report.json"
    code = cli(["precompute", str(tree), "--workers", "1", "--report", str(report_path)])
    return {"code": code, "report": json.loads(report_path.read_text()), "expected": expected}


def test_exit_status_is_non_zero(broken: dict) -> None:
    assert broken["code"] == 1
    assert broken["report"]["ok"] is False


def test_each_broken_input_is_reported_with_its_file(broken: dict) -> None:
    failures = {Path(f["file"]).resolve(): f for f in broken["report"]["failures"]}
    expected = broken["expected"]
    for kind in ("malformed", "nan", "rotation", "float mask"):
        assert expected[kind].resolve() in failures, (kind, sorted(failures))
    assert len(failures) == 4  # nothing else failed
    assert failures[expected["malformed"].resolve()]["line"] == 3
    for failure in failures.values():
        assert failure["message"] and "Traceback" not in failure["message"]
        assert "traceback" not in failure  # bad input is an InputError, not a crash
    warnings = {Path(w["file"]).resolve(): w["message"] for w in broken["report"]["warnings"]}
    assert expected["metadata"].resolve() in warnings


def test_everything_else_is_converted(broken: dict) -> None:
    counts = broken["report"]["counts"]
    assert counts["failed"] == 4
    assert counts["done"] == counts["total"] - 4 >= 5
    for failure in broken["report"]["failures"]:
        output = Path(failure["output"])
        assert not output.exists() and not summary_path(output).exists()


def test_converter_crash_is_a_failure_not_a_crash(
    sample_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from precompute import runner

    real = runner.run_job

    def crash_on_oriented_points(job, config):
        if getattr(job, "shape", None) == "OrientedPoint":
            raise RuntimeError("converter bug")
        return real(job, config)

    monkeypatch.setattr(runner, "run_job", crash_on_oriented_points)
    tree = sample_copy
    report_path = tmp_path / "report.json"
    code = cli(["precompute", str(tree), "--workers", "1", "--report", str(report_path)])
    report = json.loads(report_path.read_text())
    assert code == 1
    oriented = _files(tree, "OrientedPoint", "ndjson")
    assert [Path(f["file"]) for f in report["failures"]] == oriented
    failure = report["failures"][0]
    assert failure["message"] == "RuntimeError: converter bug"
    assert "crash_on_oriented_points" in failure["traceback"]
    assert report["counts"]["done"] == report["counts"]["total"] - len(oriented)
