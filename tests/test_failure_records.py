"""Failure records: a failed re-run leaves the older output *stale*, a failed first run leaves
the layer out, and both say why in the state's explanation and on ``/explain`` (issue 15).

Through the CLI (``cryoet-ng precompute``) on a copy of the sample tree's run TS_100.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from server_support import make_config

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.failures import FailureRecord, parse_failure
from cryoet_ng.layout import Layout, failure_path, summary_path
from cryoet_ng_cli import main as cli
from ngstate import StateOptions, build_state
from ngstate.api import BuiltState
from server import create_app
from server.state_service import StateService

pytest.importorskip("precompute.points")

DATASET, RUN = "10001", "TS_100"


def precompute(root: Path) -> int:
    return cli(["precompute", str(root), "--runs", RUN, "--workers", "1"])


def paths(root: Path, object_name: str) -> tuple[Path, Path, Path]:
    """(ndjson input, output folder, failure record) of the run's ``object_name`` picks."""
    run = Catalogue.scan(root).run(DATASET, RUN)
    assert run is not None
    annotation = next(a for a in run.annotations if a.object_name == object_name)
    output = Layout(root).annotation_output(run, annotation, "Point")
    return annotation.files[0].path, output, failure_path(summary_path(output))


def state(root: Path) -> BuiltState:
    options = StateOptions("http://127.0.0.1:8000/data", root, root)
    return build_state(Catalogue.scan(root), DATASET, RUN, None, options)


def break_line(ndjson: Path, line: int) -> str:
    """Replace record ``line`` (1-based) by one without coordinates; returns the old text."""
    text = ndjson.read_text()
    lines = text.splitlines()
    lines[line - 1] = json.dumps({"type": "point", "location": {"x": 1.0}})
    ndjson.write_text("\n".join(lines) + "\n")
    return text


@pytest.fixture
def tree(copy_sample: Callable[[Path], Path], tmp_path: Path) -> Path:
    root = copy_sample(tmp_path / "data")
    assert precompute(root) == 0
    return root


def test_failed_rerun_flags_the_older_output_stale_until_a_success(
    tree: Path, tmp_path: Path
) -> None:
    ndjson, output, record_path = paths(tree, "cytosolic ribosome")
    app = create_app(
        make_config(tree, str(tmp_path / "states")),
        states=StateService(make_config(tree, str(tmp_path / "states")), recheck_seconds=0),
    )
    client = app.test_client()
    assert client.get(f"/explain/{DATASET}/{RUN}").json["stale"] == []  # cached from here on

    original = break_line(ndjson, 3)
    assert precompute(tree) == 1
    assert output.is_dir() and record_path.is_file()  # the old output stays, flagged
    record = parse_failure(record_path.read_text())
    assert record.line == 3 and record.file == ndjson.relative_to(tree).as_posix()
    assert str(tree) not in record_path.read_text()  # no machine-local path is served

    built = state(tree)
    ribo = next(d for d in built.decisions if d.layer.startswith("100 cytosolic ribosome"))
    assert ribo.stale and ribo.visible  # still shown: an older, valid output
    assert "stale: the last precompute of its input failed" in ribo.reason
    assert f"{record.file} line 3" in ribo.reason
    # The server's freshness check watches the record: no restart needed.
    explained = client.get(f"/explain/{DATASET}/{RUN}").json
    assert explained["stale"] == [ribo.layer]
    assert any("stale" in message for message in explained["messages"])

    ndjson.write_text(original)  # fixed: the output is current again (skipped), flag gone
    assert precompute(tree) == 0
    assert not record_path.exists()
    assert client.get(f"/explain/{DATASET}/{RUN}").json["stale"] == []


def test_failed_first_run_leaves_the_layer_out_with_the_reason(
    copy_sample: Callable[[Path], Path], tmp_path: Path
) -> None:
    root = copy_sample(tmp_path / "data")
    ndjson, output, record_path = paths(root, "nucleosome")
    break_line(ndjson, 7)
    assert precompute(root) == 1
    assert not output.exists() and record_path.is_file()
    built = state(root)
    [left] = built.left_out
    assert left.name.startswith("101 nucleosome") and left.failure is not None
    assert "its precompute failed" in left.reason and "line 7" in left.reason
    assert built.explanation()["left_out"][0]["failed"] is True
    assert not any(d.layer == left.name for d in built.decisions)


def test_force_rerun_clears_the_record(tree: Path) -> None:
    ndjson, _, record_path = paths(tree, "nucleosome")
    original = break_line(ndjson, 1)
    assert precompute(tree) == 1 and record_path.exists()
    ndjson.write_text(original)
    assert cli(["precompute", str(tree), "--runs", RUN, "--workers", "1", "--force"]) == 0
    assert not record_path.exists()


def test_record_round_trip_and_bad_records_are_ignored(tree: Path) -> None:
    record = FailureRecord("10001/TS_100/x", "a/b.ndjson", "bad", 4, 1717200000.0)
    assert parse_failure(record.to_bytes().decode()) == record
    assert record.describe() == "a/b.ndjson line 4: bad (2024-06-01 00:00 UTC)"
    _, _, record_path = paths(tree, "nucleosome")
    record_path.write_text("{not json")
    assert not any(d.stale for d in state(tree).decisions)  # a damaged record says nothing
