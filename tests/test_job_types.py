"""Job types: discovery through the registry, one input giving several jobs, and the runner
writing every summary (converters only return theirs)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from cryoet_ng import atomic
from cryoet_ng.catalogue import Annotation, Catalogue, Run
from cryoet_ng.config import Config
from cryoet_ng.layout import ORIENTED_MESH, Layout, summary_path
from cryoet_ng.summaries import Summary, read_summary
from precompute.errors import Failure, InputError
from precompute.job_types import (
    REGISTRY,
    OrientedMeshes,
    PointAnnotations,
    SegmentationMasks,
    TomogramStatistics,
    TriangularMeshes,
)
from precompute.jobs import AnnotationJob, JobRegistry
from precompute.runner import execute


@dataclass(frozen=True)
class OrientedLengths(AnnotationJob):
    """A second output of every OrientedPoint file (as an oriented mesh will be)."""

    job_type: ClassVar[str] = "oriented-lengths"
    inputs: ClassVar[tuple[str, ...]] = ("OrientedPoint",)

    @classmethod
    def from_annotation(
        cls, run: Run, annotation: Annotation, layout: Layout
    ) -> Iterator[OrientedLengths]:
        for f in annotation.files:
            if f.shape == "OrientedPoint" and f.format == "ndjson":
                yield cls.create(run, annotation, layout, f.shape, f.path, "orientedlength")

    def convert(self, config: Config) -> Summary:
        lines = self.source.read_text().splitlines()
        if not lines:
            raise InputError(self.source, "no oriented points", line=1)
        with atomic.atomic_directory(self.output) as tmp:
            atomic.write_json(tmp / "info", {"@type": "test", "lines": len(lines)})
        return Summary("annotation", count=len(lines))


def test_registry_discovers_every_input_in_a_stable_order(
    sample_root: Path, tmp_path: Path
) -> None:
    catalogue = Catalogue.scan(sample_root)
    jobs = REGISTRY.jobs(catalogue, tmp_path)
    assert jobs == REGISTRY.jobs(catalogue, tmp_path)
    types = {type(j) for j in jobs}
    assert types == {
        TomogramStatistics,
        PointAnnotations,
        SegmentationMasks,
        TriangularMeshes,
        OrientedMeshes,
    }
    assert len({j.target for j in jobs}) == len(jobs)  # no two jobs write one output
    layout = Layout(tmp_path)
    for run in catalogue.runs():
        mine = [j for j in jobs if (j.dataset_id, j.run_name) == (run.dataset_id, run.name)]
        kinds = [type(j) is TomogramStatistics for j in mine]
        assert kinds == sorted(kinds, reverse=True)  # the run's tomograms first
        for job in mine:
            if isinstance(job, AnnotationJob):
                annotation = next(
                    a
                    for a in run.annotations
                    if (a.id, a.voxel_spacing) == (job.annotation_id, job.voxel_spacing)
                )
                kind = ORIENTED_MESH if isinstance(job, OrientedMeshes) else job.shape
                assert job.output == layout.annotation_output(run, annotation, kind)
                assert job.summary == summary_path(job.output) and job.output_folder == job.output
            else:
                assert job.output_folder is None and job.target == job.summary
    assert [t.priority for t in (SegmentationMasks, TomogramStatistics, PointAnnotations)] == [
        2,
        1,
        0,
    ]
    runs = ("TS_026",)
    assert {j.run_name for j in REGISTRY.jobs(catalogue, tmp_path, runs)} == set(runs)


def test_one_annotation_file_gives_several_jobs(sample_root: Path, tmp_path: Path) -> None:
    registry = JobRegistry()
    registry.register(PointAnnotations)
    registry.register(OrientedLengths)
    catalogue = Catalogue.scan(sample_root, ["10000"])
    run = catalogue.run("10000", "TS_026")
    assert run is not None
    jobs = list(registry.run_jobs(run, Layout(tmp_path)))
    oriented = [j for j in jobs if isinstance(j, AnnotationJob) and j.shape == "OrientedPoint"]
    assert {type(j) for j in oriented} == {PointAnnotations, OrientedLengths}
    for source in {j.source for j in oriented}:  # each file: lines first, then the second
        pair = [type(j) for j in oriented if j.source == source]
        assert pair == [PointAnnotations, OrientedLengths]
    extra = [j for j in oriented if isinstance(j, OrientedLengths)]
    assert all(j.output.name.endswith("_orientedlength") for j in extra)

    config = Config(data_root=sample_root)
    for job in extra:
        outcome = execute(job, config)
        assert outcome.status == "done", outcome.error
        summary = read_summary(job.summary)  # written by the runner, not the converter
        assert summary is not None and summary.fingerprint is not None
        assert summary.extra["output"] == job.output.name
        assert summary.count == len(job.source.read_text().splitlines())
        assert execute(job, config).status == "skipped"


def test_failures_are_typed_records(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ndjson"
    empty.write_text("")
    job = OrientedLengths(
        source=empty,
        shape="OrientedPoint",
        output=tmp_path / "out" / "1-x-1.0_orientedlength",
        annotation_id="1",
        object_name="x",
        voxel_spacing=10.0,
    )
    outcome = execute(job, Config(data_root=tmp_path))
    assert outcome.status == "failed"
    assert outcome.error == Failure(str(empty), "no oriented points", line=1)
    assert str(outcome.error) == f"{empty}:1: no oriented points"
    assert outcome.to_json()["error"] == {
        "file": str(empty),
        "line": 1,
        "message": "no oriented points",
    }
    assert not job.summary.exists() and not job.output.exists()


def test_register_checks_the_type() -> None:
    registry = JobRegistry()
    registry.register(OrientedLengths)
    with pytest.raises(ValueError, match="registered already"):
        registry.register(OrientedLengths)
    with pytest.raises(ValueError, match="names itself"):
        registry.register(AnnotationJob)
    assert registry.for_input("OrientedPoint") == (OrientedLengths,)
    assert registry.for_input("Point") == ()


RIBOSOMES_101 = (
    "10000/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/101/cytosolic_ribosome-1.0.json"
)
MASK_104 = "10000/TS_026/Reconstructions/VoxelSpacing13.480/Annotations/104/cytoplasm-1.0.json"


@pytest.mark.parametrize("zarr", ["listed", "unlisted", "missing"])
def test_the_batch_and_the_state_agree_on_which_file_is_converted(
    sample_copy: Path, tmp_path: Path, zarr: str
) -> None:
    """A mask published as MRC only (older depositions), or whose listed zarr is absent, is
    converted from the MRC, and the state takes that output: both ask
    Annotation.converted_file, so a converted mask is never left out of the view."""
    import json
    import shutil

    from ngstate.inputs import state_inputs

    meta_path = sample_copy / MASK_104
    meta = json.loads(meta_path.read_text())
    zarr_entry = next(f for f in meta["files"] if f["format"] == "zarr")
    if zarr == "unlisted":
        meta["files"].remove(zarr_entry)
        meta_path.write_text(json.dumps(meta))
    if zarr != "listed":
        shutil.rmtree(sample_copy / zarr_entry["path"])
    catalogue = Catalogue.scan(sample_copy)
    run = catalogue.run("10000", "TS_026")
    assert run is not None
    annotation = next(a for a in run.annotations if a.id == "104")
    chosen = annotation.converted_file("SegmentationMask")
    assert chosen is not None and chosen.format == ("zarr" if zarr == "listed" else "mrc")

    layout = Layout(tmp_path / "out")
    (job,) = [
        j
        for j in REGISTRY.jobs(catalogue, tmp_path / "out")
        if isinstance(j, SegmentationMasks) and j.annotation_id == "104"
    ]
    assert job.source == chosen.path
    shown = [
        f
        for f in state_inputs(run, None, layout).files
        if f.annotation.id == "104" and f.output is not None
    ]
    assert [(f.file.format, f.output) for f in shown] == [(chosen.format, job.output)]


def test_a_point_file_in_a_format_not_read_is_named(sample_copy: Path) -> None:
    """Not a failure (the file may be fine), but never silent: a note naming the metadata
    file, and no job or layer for it."""
    import json

    meta_path = sample_copy / RIBOSOMES_101
    meta = json.loads(meta_path.read_text())
    points = [f for f in meta["files"] if f["shape"] in ("Point", "OrientedPoint")]
    assert points
    for entry in points:
        entry["format"] = "csv"
    meta_path.write_text(json.dumps(meta))
    catalogue = Catalogue.scan(sample_copy)
    notes = [w for w in catalogue.warnings if str(w.path) == str(meta_path)]
    assert notes and not any(w.skipped for w in notes)
    assert all("published as csv only; the precompute reads ndjson" in w.message for w in notes)
    run = catalogue.run("10000", "TS_026")
    assert run is not None
    jobs = REGISTRY.jobs(catalogue, sample_copy)
    folder = str(meta_path.parent) + "/"
    assert not [j for j in jobs if str(getattr(j, "source", "")).startswith(folder)]
