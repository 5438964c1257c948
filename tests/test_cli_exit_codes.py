"""Exit status of every sub-command: 0 done, 1 some input failed, 2 nothing done (usage,
configuration, data root, selection, port), with the message on stderr and no traceback.

Usage errors must come before any Dask cluster starts: the commands run in a subprocess
that reports whether ``distributed`` (imported only to start a cluster) was imported.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cryoet_ng_cli import main as cli

# Runs the CLI, then prints whether a Dask cluster could have started.
PROBE = (
    "import sys; from cryoet_ng_cli import main; code = main(sys.argv[1:]); "
    "print('DASK IMPORTED' if 'distributed' in sys.modules else 'no dask', file=sys.stderr); "
    "sys.exit(code)"
)


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=None if env is None else dict(os.environ, **env),
        check=False,
    )


def assert_usage_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert "no dask" in done.stderr, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr


def test_precompute_unknown_dataset_is_2_with_the_known_ids(sample_root: Path) -> None:
    done = run("precompute", str(sample_root), "--datasets", "99999", "--workers", "2")
    assert_usage_error(done, "unknown dataset 99999", "known: 10000, 10001")


def test_precompute_unknown_run_is_2_with_the_known_runs(sample_root: Path) -> None:
    done = run("precompute", str(sample_root), "--runs", "TS_999", "TS_026", "--workers", "2")
    assert_usage_error(done, "unknown run TS_999 in the tree", "known: TS_026, TS_027, TS_100")
    done = run("precompute", str(sample_root), "--datasets", "10001", "--runs", "TS_026")
    assert_usage_error(done, "unknown run TS_026 in dataset 10001 (known: TS_100)")


def test_missing_roots_are_2(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    assert_usage_error(
        run("precompute", str(missing), "--workers", "2"), f"{missing}: data root is not"
    )
    assert_usage_error(run("export-states", str(missing), "--local-urls"), str(missing))
    assert_usage_error(run("state", str(missing), "10000", "TS_026"), str(missing))
    assert_usage_error(run("validate", str(missing)), f"{missing}: not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_usage_error(run("precompute", str(empty)), f"{empty}: data root is empty")
    (empty / "Images").mkdir()
    assert_usage_error(run("precompute", str(empty)), "not a portal")


def test_configuration_errors_are_2(tmp_path: Path, sample_root: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("data_root: [unclosed\n")
    done = run("precompute", str(sample_root), "--config", str(bad_yaml))
    assert_usage_error(done, f"{bad_yaml}: not valid YAML", f'in "{bad_yaml}", line')
    bad_key = tmp_path / "key.yaml"
    bad_key.write_text("data_root: /x\nprecompute:\n  workerz: 2\n")
    done = run("precompute", str(sample_root), "--config", str(bad_key))
    assert_usage_error(done, f"{bad_key}: unknown key 'precompute.workerz'")


def test_environment_override_errors_name_the_variable(sample_root: Path) -> None:
    done = run("precompute", str(sample_root), env={"CRYOET_NG__PRECOMPUTE__WORKERS": "many"})
    assert_usage_error(
        done, "environment variable CRYOET_NG__PRECOMPUTE__WORKERS: 'precompute.workers'"
    )
    assert "default.yaml" not in done.stderr
    done = run("validate", str(sample_root), env={"CRYOET_NG__SERVER__PROT": "1"})
    assert_usage_error(done, "environment variable CRYOET_NG__SERVER__PROT: unknown key")


def test_serve_on_a_busy_port_is_2_before_any_url(sample_root: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run("serve", "--data-root", str(sample_root), "--port", str(port))
    assert_usage_error(done, f"cannot listen on 127.0.0.1:{port}")
    assert "View Tomogram" not in done.stdout


def test_sample_into_an_existing_folder_is_2(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "keep.txt").write_text("mine")
    assert_usage_error(run("sample", str(tmp_path / "tree")), str(tmp_path / "tree"))
    assert (tmp_path / "tree" / "keep.txt").read_text() == "mine"


def test_export_states_without_data_url_is_2(sample_root: Path, tmp_path: Path) -> None:
    done = run("export-states", str(sample_root), "--out", str(tmp_path / "out"))
    assert_usage_error(done, "data_url is not set", "http://127.0.0.1:8000/data/", "--local-urls")
    assert not (tmp_path / "out").exists()


def test_unknown_state_ids_are_2(sample_root: Path) -> None:
    assert_usage_error(run("state", str(sample_root), "99999", "TS_026"), "unknown dataset 99999")
    assert_usage_error(
        run("state", str(sample_root), "10000", "TS_026", "--tomogram", "nope"),
        "unknown tomogram 'nope'",
    )


def test_validate_resolves_its_root(
    copy_sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``..`` in the root: the same outputs checked, and no false problem."""
    tree = copy_sample(tmp_path / "tree")
    assert cli(["precompute", str(tree), "--runs", "TS_100", "--workers", "1"]) == 0
    capsys.readouterr()
    assert cli(["validate", str(tree)]) == 0
    plain = capsys.readouterr().out.splitlines()[-1]
    dotted = f"{tree}/10000/../"
    assert cli(["validate", dotted]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == plain and ", 0 problems" in plain
    assert int(plain.split()[0]) > 0


def test_precompute_exit_1_names_the_failed_input(copy_sample, tmp_path: Path) -> None:
    tree = copy_sample(tmp_path / "tree")
    ndjson = next(tree.rglob("*_point.ndjson"))
    ndjson.write_text('{"type": "point", "location": {"x": 1}}\n')
    report = tmp_path / "report.json"
    done = run(
        "precompute",
        str(tree),
        "--workers",
        "1",
        "--runs",
        ndjson.parts[-6],
        "--report",
        str(report),
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    failures = json.loads(report.read_text())["failures"]
    assert [f["file"] for f in failures] == [str(ndjson)]
    assert str(ndjson) in done.stderr
