"""The damaged-tree corpus (:mod:`damaged_trees`, 34 kinds) through ``precompute``, ``state``,
``export-states``, ``validate`` and the server, against a clean copy of the same sample:
every damage named by its file, the untouched runs' outputs and states byte-identical to
the clean run's, no traceback, no hang (each command under a timeout), exit codes as
documented (precompute and export-states 1, validate 0, state 0 or 2).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from damaged_trees import (
    DAMAGED_RUN,
    NO_TOMOGRAM_RUN,
    UNTOUCHED_RUNS,
    VS,
    Damage,
    build,
)
from flask.testing import FlaskClient
from server_support import make_config

CLI = "import sys; from cryoet_ng_cli import main; sys.exit(main(sys.argv[1:]))"
INDEX = "cryoet-ng-index"


def cli(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=600,  # no hang
        check=False,
    )


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr


@dataclass(frozen=True)
class Trees:
    clean: Path
    damaged: Path
    clean_out: Path
    damaged_out: Path
    damages: list[Damage]
    clean_run: subprocess.CompletedProcess[str]
    damaged_run: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def trees(copy_sample: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory) -> Trees:
    base = tmp_path_factory.mktemp("damaged")
    clean = copy_sample(base / "clean").resolve()
    damaged = copy_sample(base / "damaged").resolve()
    damages = build(damaged)
    outs = base / "clean-out", base / "damaged-out"
    runs = [
        cli("precompute", tree, "--out", out, "--workers", "1", "--report", f"{out}.json")
        for tree, out in zip((clean, damaged), outs, strict=True)
    ]
    return Trees(clean, damaged, *outs, damages, *runs)


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith(INDEX)
    }


def test_corpus_has_at_least_25_kinds(trees: Trees) -> None:
    assert len({d.kind for d in trees.damages}) >= 25
    assert trees.clean_run.returncode == 0, trees.clean_run.stderr


def test_precompute_names_every_damaged_file_and_exits_1(trees: Trees) -> None:
    done = trees.damaged_run
    assert done.returncode == 1, done.stderr
    no_traceback(done)
    for damage in trees.damages:
        assert str(trees.damaged / damage.names) in done.stderr, damage
    # Data damage inside a record: named with its line (a byte that is not UTF-8 too).
    lines = {"data not UTF-8": 2, "data line truncated": 3, "data location missing": 4}
    for damage in trees.damages:
        if damage.kind in lines:
            assert f"{trees.damaged / damage.names}:{lines[damage.kind]}: " in done.stderr
    report = json.loads(Path(f"{trees.damaged_out}.json").read_text())
    assert report["counts"]["failed"] > 0 and report["counts"]["done"] > 0


def test_untouched_outputs_are_byte_identical_and_nothing_is_half_written(trees: Trees) -> None:
    clean, damaged = files(trees.clean_out), files(trees.damaged_out)
    assert clean and all(damaged.get(name) == data for name, data in clean.items()), sorted(
        name for name, data in clean.items() if damaged.get(name) != data
    )
    assert not [name for name in damaged if "/.tmp-" in f"/{name}"]
    # The damaged run's good items are converted too: its tomogram (kept on the folder's
    # voxel spacing) and the annotation with a second metadata file; the skipped ones not.
    converted = {name.split("/")[-1] for name in damaged if name.startswith(DAMAGED_RUN)}
    assert "100-tomogram.summary.json" in converted
    by_kind = {d.kind: d.names.split("/")[-2] for d in trees.damages if "/Annotations/" in d.names}
    assert (
        f"{by_kind['second metadata file']}-cytosolic_ribosome-1.0_point.summary.json" in converted
    )
    assert not [n for n in converted if n.startswith(f"{by_kind['unknown shape']}-")]


def test_state_of_each_run(trees: Trees) -> None:
    for dataset, run in UNTOUCHED_RUNS:
        clean = cli("state", trees.clean, dataset, run, "--out", trees.clean_out)
        damaged = cli("state", trees.damaged, dataset, run, "--out", trees.damaged_out)
        assert clean.returncode == damaged.returncode == 0, damaged.stderr
        no_traceback(damaged)
        assert damaged.stdout == clean.stdout
    dataset, run = DAMAGED_RUN.split("/")
    done = cli("state", trees.damaged, dataset, run, "--out", trees.damaged_out)
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    layers = [layer["name"] for layer in json.loads(done.stdout)["layers"]]
    assert layers  # its tomogram and the annotations that were converted
    dataset, run = NO_TOMOGRAM_RUN.split("/")
    done = cli("state", trees.damaged, dataset, run, "--out", trees.damaged_out)
    assert done.returncode == 2
    no_traceback(done)
    named = f"{NO_TOMOGRAM_RUN}/{VS}/Tomograms/100/tomogram_metadata.json: size.x"
    assert f"run {NO_TOMOGRAM_RUN} has no tomogram ({named}" in done.stderr, done.stderr


def test_export_states_writes_the_unaffected_states_and_exits_1(trees: Trees) -> None:
    url = "--data-url", "https://files.example.org"
    clean = cli("export-states", trees.clean, "--out", trees.clean_out, *url)
    damaged = cli("export-states", trees.damaged, "--out", trees.damaged_out, *url)
    assert clean.returncode == 0, clean.stderr
    assert damaged.returncode == 1, damaged.stderr
    no_traceback(damaged)
    # Metadata damage is named; a bad data file only leaves its layer out (a note).
    for damage in trees.damages:
        if not damage.names.endswith(".ndjson"):
            assert str(trees.damaged / damage.names) in damaged.stderr, damage
    states = {n: d for n, d in files(trees.clean_out).items() if n.endswith("config.json")}
    assert states
    after = files(trees.damaged_out)
    assert all(after.get(name) == data for name, data in states.items())


def test_validate_finds_no_bad_output(trees: Trees) -> None:
    done = cli("validate", trees.damaged_out)
    assert done.returncode == 0, done.stdout
    no_traceback(done)
    assert " 0 problems" in done.stdout


def test_server_renders_the_damaged_tree(trees: Trees, tmp_path: Path) -> None:
    import server

    def client(tree: Path, out: Path) -> FlaskClient:
        config = make_config(tree, str(tmp_path / f"{tree.name}-states"))
        config = config.replace(output_root=out, data_url="https://files.example.org")
        return server.create_app(config).test_client()

    clean, damaged = client(trees.clean, trees.clean_out), client(trees.damaged, trees.damaged_out)
    page = damaged.get("/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for _dataset, run in UNTOUCHED_RUNS:
        assert run in text
    for dataset, run in UNTOUCHED_RUNS:
        path = f"/state/{dataset}/{run}.json"
        answer = damaged.get(path)
        assert answer.status_code == 200
        assert answer.get_data() == clean.get(path).get_data()
        assert damaged.get(f"/view/{dataset}/{run}").status_code == 302
    assert damaged.get(f"/view/{DAMAGED_RUN}").status_code == 302
    answer = damaged.get(f"/view/{NO_TOMOGRAM_RUN}")
    assert answer.status_code == 404
    message = answer.get_json()["message"]
    assert f"{NO_TOMOGRAM_RUN}/{VS}/Tomograms/100/tomogram_metadata.json: size.x" in message
    assert str(trees.damaged) not in message  # no absolute paths served
    # A person following the link gets a page saying the same.
    page = damaged.get(f"/view/{NO_TOMOGRAM_RUN}", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "tomogram_metadata.json: size.x" in page.get_data(as_text=True)
