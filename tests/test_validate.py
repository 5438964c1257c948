"""``cryoet-ng validate``: independent readers accept good outputs and catch corrupted ones."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cryoet_ng.layout import summary_path
from cryoet_ng_cli import main as cli

for _module in ("precompute.points", "precompute.segmentation", "precompute.tomogram"):
    pytest.importorskip(_module)


@pytest.fixture(scope="module")
def good_out(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("validate")
    out = base / "out"
    code = cli(["precompute", str(sample_root), "--out", str(out), "--workers", "1"])
    assert code == 0
    return out


def _outputs(out: Path, kind: str) -> list[Path]:
    """Output folders whose info says ``kind`` ("annotations" or "segmentation")."""
    found = []
    for info in sorted(out.rglob("NeuroglancerPrecompute/*/info")):
        meta = json.loads(info.read_text())
        is_annotation = meta.get("@type") == "neuroglancer_annotations_v1"
        if is_annotation == (kind == "annotations"):
            found.append(info.parent)
    assert found, kind
    return found


def _data_files(folder: Path) -> list[Path]:
    """Bulk data files (not info/metadata) of an output, largest first."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != "info"]
    return sorted(files, key=lambda p: (-p.stat().st_size, str(p)))


def drop_summary(out: Path) -> Path:
    folder = _outputs(out, "annotations")[0]
    summary_path(folder).unlink()
    return folder


def truncate_annotations(out: Path) -> Path:
    folder = max(_outputs(out, "annotations"), key=lambda f: _data_files(f)[0].stat().st_size)
    victim = _data_files(folder)[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return folder


def garble_segmentation(out: Path) -> Path:
    folder = _outputs(out, "segmentation")[0]
    scale0 = json.loads((folder / "info").read_text())["scales"][0]["key"]
    victim = _data_files(folder / scale0)[0]
    victim.write_bytes(b"\x00garbage" * 16)
    return folder


def miscount_segmentation(out: Path) -> Path:
    folder = _outputs(out, "segmentation")[0]
    path = summary_path(folder)
    summary = json.loads(path.read_text())
    summary["count"] += 1
    path.write_text(json.dumps(summary))
    return folder


def leave_temporary(out: Path) -> Path:
    folder = _outputs(out, "annotations")[0].parent
    stale = folder / ".tmp-something-abc123"
    stale.mkdir()
    return stale


def break_info(out: Path) -> Path:
    folder = _outputs(out, "segmentation")[-1]
    (folder / "info").write_text('{"type": "segmentation", "scales": [')
    return folder


def test_validate_passes_on_good_outputs(good_out: Path, capsys) -> None:
    assert cli(["validate", str(good_out)]) == 0
    assert ", 0 problems" in capsys.readouterr().out


@pytest.mark.parametrize(
    "corrupt",
    [
        drop_summary,
        truncate_annotations,
        garble_segmentation,
        miscount_segmentation,
        leave_temporary,
        break_info,
    ],
)
def test_validate_reports_corruption(
    good_out: Path, tmp_path: Path, capsys, corrupt: Callable[[Path], Path]
) -> None:
    out = tmp_path / "out"
    shutil.copytree(good_out, out)
    victim = corrupt(out)
    assert cli(["validate", str(out)]) == 1
    printed = capsys.readouterr().out.splitlines()
    problems = [line for line in printed if line.startswith(str(out))]
    assert len(problems) == 1, printed
    assert problems[0].startswith(f"{victim}: ")


def test_validate_rejects_a_tree_without_outputs(tmp_path: Path) -> None:
    assert cli(["validate", str(tmp_path)]) == 1
