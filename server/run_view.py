"""What the index page shows of one run: a view model built from ngstate's built state.

:func:`run_view` turns a run and its :class:`~server.state_service.EncodedState` into plain
rows (one per annotation layer, one per layer left out), rendered by the ``run_section``
macro of ``templates/_run.html``. The index page calls both; a page that lists runs in
another way (paged, per dataset) calls the same pair, so a run looks the same everywhere.

Per layer: name, whether it is visible and why, ground truth or prediction (and, in its
own column, whether the curators recommend it), method type and software, authors, count,
deposition, voxel spacing, and a stale flag (its last precompute failed; the reason says
when and why). Per run: the key-photo thumbnail, whether the run is curated, and the layers
left out for a missing output, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryoet_ng.about import About
from cryoet_ng.catalogue import Catalogue, Run, Tomogram
from cryoet_ng.store import TreePath
from ngstate.candidates import Candidate, LeftOut
from server.state_service import EncodedState

THUMBNAIL = "key-photo-thumbnail.png"


@dataclass(frozen=True)
class LayerRow:
    name: str
    visible: bool
    reason: str
    status: str  # ground truth, prediction
    curator_recommended: bool
    method: str  # method type and software
    authors: str
    count: str
    deposition: str
    spacing: str  # "13.48 Å"
    stale: bool
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class LeftOutRow:
    name: str
    shape: str  # plain word: picks, mask...
    reason: str
    failed: bool


@dataclass(frozen=True)
class RunView:
    dataset_id: str
    run_name: str
    tomogram_id: str | None
    thumbnail: str | None  # URL of the run's key-photo thumbnail
    curation: str | None
    layers: list[LayerRow]
    left_out: list[LeftOutRow]
    problem: str | None = None  # the run has no state (no tomogram...)

    @property
    def stale(self) -> int:
        return sum(layer.stale for layer in self.layers)


def _method(about: About) -> str:
    kind = about.method_type or "not given"
    return f"{kind} · {about.software}" if about.software else kind


def _count(c: Candidate) -> str:
    """Picks (records), instances (labels) or voxels; the metadata's object_count without
    a summary."""
    summary, count = c.summary, c.about.object_count
    if c.family == "point":
        n = summary.count if summary is not None else count
        return "" if n is None else f"{n:,} picks"
    if summary is not None and summary.labels is not None:
        labels = len([k for k in summary.labels if k != 0])
        if c.shape == "InstanceSegmentationMask":
            return f"{labels:,} instances"
        return f"{summary.count:,} voxels"
    return f"{count:,} objects" if count else ""


def layer_row(c: Candidate, visible: bool, reason: str, warnings: tuple[str, ...]) -> LayerRow:
    about = c.about
    return LayerRow(
        name=c.name,
        visible=visible,
        reason=reason,
        status=about.status,
        curator_recommended=about.curator_recommended,
        method=_method(about),
        authors=about.authors_text,
        count=_count(c),
        deposition=about.deposition_id or "",
        spacing=f"{c.annotation.voxel_spacing:g} Å",
        stale=c.stale is not None,
        warnings=warnings,
    )


def left_out_row(item: LeftOut) -> LeftOutRow:
    return LeftOutRow(item.name, item.shape_word, item.reason, item.failure is not None)


def thumbnail_path(tomogram: Tomogram, root: TreePath) -> TreePath | None:
    """The tomogram's key-photo thumbnail: as its metadata names it (bucket-relative, under
    ``root``), else the portal's ``VoxelSpacing<vs>/Images/<id>/key-photo-thumbnail.png``;
    None when neither exists."""
    spacing_dir = tomogram.metadata_path.parent.parent.parent
    candidates: list[TreePath] = [spacing_dir / "Images" / tomogram.id / THUMBNAIL]
    named = (tomogram.metadata.get("key_photo") or {}).get("thumbnail")
    if isinstance(named, str) and named:
        candidates.insert(0, root / named.lstrip("/"))
    return next((p for p in candidates if p.is_file()), None)


def _inside(path: TreePath, root: TreePath) -> bool:
    """Whether ``path`` lies under the data root (a local link may point outside it)."""
    if isinstance(path, Path):
        return isinstance(root, Path) and path.resolve().is_relative_to(root.resolve())
    return path.is_relative_to(root)


def run_view(catalogue: Catalogue, run: Run, encoded: EncodedState, data_url: str) -> RunView:
    """The rows of one run (its default tomogram's state)."""
    built = encoded.built
    by_name = {c.name: c for c in built.candidates}
    layers = [
        layer_row(by_name[d.layer], d.visible, d.reason, d.warnings)
        for d in built.decisions
        if d.layer in by_name
    ]
    tomogram = run.tomogram(built.tomogram_id)
    thumbnail = None
    path = thumbnail_path(tomogram, catalogue.root) if tomogram is not None else None
    if path is not None and _inside(path, catalogue.root):
        thumbnail = f"{data_url}/{quote(catalogue.relative(path))}"
    return RunView(
        dataset_id=run.dataset_id,
        run_name=run.name,
        tomogram_id=built.tomogram_id,
        thumbnail=thumbnail,
        curation=built.curation.reason if built.curation is not None else None,
        layers=layers,
        left_out=[left_out_row(item) for item in built.left_out],
    )


def failed_run(run: Run, problem: str) -> RunView:
    return RunView(run.dataset_id, run.name, None, None, None, [], [], problem)
