"""A corpus of damaged portal trees, as the portal's messy history would produce them.

:func:`build` copies the sample tree and adds, beside its untouched runs, two runs made of
damage: ``10000/TS_900`` (a copy of TS_027 holding one copy of a point annotation per
kind of damage, and damaged tomogram, run and folder entries) and ``10000/TS_901`` (a copy
of TS_027 whose only tomogram's metadata is unusable), and damages the metadata of
dataset 10001. Every :class:`Damage` names the file (relative to the data root) that the
messages about it must name. The sample's own runs (10000/TS_026, 10000/TS_027,
10001/TS_100) are otherwise untouched, so their outputs and states must be byte-identical
to those of a clean run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VS = "Reconstructions/VoxelSpacing13.480"
SOURCE_ANNOTATION = f"10000/TS_026/{VS}/Annotations/100"
META_NAME = "cytosolic_ribosome-1.0.json"
DATA_NAME = "cytosolic_ribosome-1.0_point.ndjson"
SECOND_META = "cytosolic_ribosome-2.0.json"  # sorts after META_NAME: warned, not used
DAMAGED_RUN = "10000/TS_900"
NO_TOMOGRAM_RUN = "10000/TS_901"
UNTOUCHED_RUNS = (("10000", "TS_026"), ("10000", "TS_027"), ("10001", "TS_100"))


@dataclass(frozen=True)
class Damage:
    kind: str
    names: str  # the file or folder, relative to the data root, that messages must name


@dataclass(frozen=True)
class Annotation:
    """One copy of the source point annotation in the damaged run."""

    folder: Path
    rel: str  # the folder, relative to the data root

    @property
    def meta(self) -> Path:
        return self.folder / META_NAME

    @property
    def data(self) -> Path:
        return self.folder / DATA_NAME

    @property
    def meta_rel(self) -> str:
        return f"{self.rel}/{META_NAME}"

    @property
    def data_rel(self) -> str:
        return f"{self.rel}/{DATA_NAME}"

    def edit(self, change: Callable[[dict[str, Any]], object]) -> None:
        doc = json.loads(self.meta.read_text())
        change(doc)
        self.meta.write_text(json.dumps(doc, indent=2))


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["files"][0]
    return entry


def _lines(path: Path, index: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[index] = text
    path.write_text("\n".join(lines) + "\n")


def _not_utf8(path: Path, index: int) -> None:
    """A byte no UTF-8 decoder accepts, inside record ``index``."""
    raw = path.read_bytes().splitlines(keepends=True)
    raw[index] = raw[index].replace(b'"point"', b'"p\xffoint"')
    path.write_bytes(b"".join(raw))


def _folder_instead(a: Annotation) -> None:
    a.data.unlink()
    a.data.mkdir()


# kind -> what to do to one annotation copy, and which of its files the message names
ANNOTATION_DAMAGE: dict[str, tuple[Callable[[Annotation], object], str]] = {
    "files is an object": (lambda a: a.edit(lambda d: d.update(files=_entry(d))), "meta"),
    "files missing": (lambda a: a.edit(lambda d: d.pop("files")), "meta"),
    "files empty": (lambda a: a.edit(lambda d: d.update(files=[])), "meta"),
    "ground_truth_status a string": (
        lambda a: a.edit(lambda d: d.update(ground_truth_status="false")),
        "meta",
    ),
    "is_curator_recommended a number": (
        lambda a: a.edit(lambda d: d.update(is_curator_recommended=1)),
        "meta",
    ),
    "unknown shape": (lambda a: a.edit(lambda d: _entry(d).update(shape="Sphere")), "meta"),
    "file entry without path": (lambda a: a.edit(lambda d: _entry(d).pop("path")), "meta"),
    "file entry path a number": (lambda a: a.edit(lambda d: _entry(d).update(path=7)), "meta"),
    "absolute file path": (
        lambda a: a.edit(lambda d: _entry(d).update(path="/etc/hostname")),
        "meta",
    ),
    "file path leaving the root": (
        lambda a: a.edit(lambda d: _entry(d).update(path="10000/../../outside.ndjson")),
        "meta",
    ),
    "no annotation_object": (lambda a: a.edit(lambda d: d.pop("annotation_object")), "meta"),
    "empty object name": (
        lambda a: a.edit(lambda d: d["annotation_object"].update(name="")),
        "meta",
    ),
    "object name a list": (
        lambda a: a.edit(lambda d: d["annotation_object"].update(name=["ribosome"])),
        "meta",
    ),
    "version null": (lambda a: a.edit(lambda d: d.update(version=None)), "meta"),
    "negative object_count": (lambda a: a.edit(lambda d: d.update(object_count=-3)), "meta"),
    "diameter a string": (
        lambda a: a.edit(lambda d: d["annotation_object"].update(diameter="280 A")),
        "meta",
    ),
    "truncated metadata": (lambda a: a.meta.write_text('{"annotation_object": {"na'), "meta"),
    "metadata not UTF-8": (lambda a: a.meta.write_bytes(b'{"a": "\xff\xfe"}'), "meta"),
    "NaN in metadata": (
        lambda a: a.meta.write_text(a.meta.read_text().replace('"object_count": 10', '"x": NaN')),
        "meta",
    ),
    "metadata an array": (lambda a: a.meta.write_text("[1, 2, 3]"), "meta"),
    "second metadata file": (lambda a: shutil.copy(a.meta, a.folder / SECOND_META), "second"),
    "data file missing": (lambda a: a.data.unlink(), "data"),
    "data not UTF-8": (lambda a: _not_utf8(a.data, 1), "data"),
    "data line truncated": (lambda a: _lines(a.data, 2, '{"type": "point", "locat'), "data"),
    "data line an array": (lambda a: _lines(a.data, 0, "[1, 2, 3]"), "data"),
    "data location missing": (lambda a: _lines(a.data, 3, '{"type": "point"}'), "data"),
    "data coordinate a string": (
        lambda a: _lines(a.data, 1, '{"type": "point", "location": {"x": "1", "y": 2, "z": 3}}'),
        "data",
    ),
    "data path a folder": (_folder_instead, "data"),
}


def _copy_run(tree: Path, source: str, dest: str) -> Path:
    """A copy of a run under another name, its metadata's paths rewritten to the copy."""
    target = tree / dest
    shutil.copytree(tree / source, target)
    for meta in target.rglob("*.json"):
        meta.write_text(meta.read_text().replace(f"{source}/", f"{dest}/"))
    return target


def build(tree: Path) -> list[Damage]:
    """Damage a copy of the sample tree at ``tree`` (see the module notes)."""
    damages: list[Damage] = []
    run = _copy_run(tree, "10000/TS_027", DAMAGED_RUN)
    source = tree / SOURCE_ANNOTATION
    for number, (kind, (damage, named)) in enumerate(ANNOTATION_DAMAGE.items()):
        rel = f"{DAMAGED_RUN}/{VS}/Annotations/{200 + number}"
        folder = tree / rel
        shutil.copytree(source, folder)
        annotation = Annotation(folder, rel)
        text = annotation.meta.read_text()
        text = text.replace(SOURCE_ANNOTATION, rel).replace("10000/TS_026/", f"{DAMAGED_RUN}/")
        annotation.meta.write_text(text)
        damage(annotation)
        names = {
            "meta": annotation.meta_rel,
            "data": annotation.data_rel,
            "second": f"{rel}/{SECOND_META}",
        }[named]
        damages.append(Damage(kind, names))

    tomograms = run / VS / "Tomograms"
    bad_json = tomograms / "101" / "tomogram_metadata.json"
    bad_json.parent.mkdir()
    bad_json.write_text('{"voxel_spacing": 13.48, "size": ')
    damages.append(Damage("tomogram metadata truncated", f"{DAMAGED_RUN}/{VS}/Tomograms/101"))
    (tomograms / "102").mkdir()
    (tomograms / "102" / "README").write_text("interrupted upload")
    damages.append(Damage("tomogram folder without metadata", f"{DAMAGED_RUN}/{VS}/Tomograms/102"))
    meta = tomograms / "100" / "tomogram_metadata.json"
    meta.write_text(meta.read_text().replace('"voxel_spacing": 13.48', '"voxel_spacing": "13.48"'))
    damages.append(Damage("tomogram voxel_spacing a string", f"{DAMAGED_RUN}/{VS}/Tomograms/100"))
    odd = run / "Reconstructions" / "VoxelSpacing13,48"
    shutil.copytree(tree / SOURCE_ANNOTATION, odd / "Annotations" / "100")
    damages.append(
        Damage("voxel spacing folder name", f"{DAMAGED_RUN}/Reconstructions/VoxelSpacing13,48")
    )
    run_meta = run / "run_metadata.json"
    doc = json.loads(run_meta.read_text())
    doc["run_name"] = 900
    run_meta.write_text(json.dumps(doc))
    damages.append(Damage("run_name a number", f"{DAMAGED_RUN}/run_metadata.json"))

    no_tomogram = _copy_run(tree, "10000/TS_027", NO_TOMOGRAM_RUN)
    meta = no_tomogram / VS / "Tomograms" / "100" / "tomogram_metadata.json"
    doc = json.loads(meta.read_text())
    doc["size"] = {"x": "630", "y": 630, "z": 184}
    meta.write_text(json.dumps(doc))
    damages.append(Damage("tomogram size not numeric", f"{NO_TOMOGRAM_RUN}/{VS}/Tomograms/100"))

    (tree / "10001" / "dataset_metadata.json").write_text("{'dataset_title': 'single quotes'}")
    damages.append(Damage("dataset metadata not JSON", "10001/dataset_metadata.json"))
    return damages
