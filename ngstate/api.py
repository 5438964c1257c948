"""Entry point: catalogue + summaries -> one tomogram's viewer state and its explanation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryoet_ng.catalogue import Catalogue, Run, Tomogram
from cryoet_ng.config import Config, LayerStyle, SelectionConfig
from cryoet_ng.layout import AnyLayout, failure_path, layout_of
from cryoet_ng.store import TreePath, public_url, relative_key
from ngstate import colors, layers
from ngstate.candidates import Candidate, LeftOut, gather, numeric_id
from ngstate.compose import compose
from ngstate.contrast import tomogram_contrast
from ngstate.curation import Curation, curation
from ngstate.inputs import state_inputs
from ngstate.selection import Context, Decision, select
from ngstate.state import Camera, Chrome, page_title, viewer_state
from ngstate.summary_reader import SummaryReader


class NotFoundError(LookupError):
    """Unknown dataset, run or tomogram; the message says which."""


@dataclass(frozen=True)
class StateOptions:
    data_url: str  # URL prefix of the data tree as the browser sees it, no trailing slash
    out_root: TreePath  # precompute outputs + summaries (a folder or on a store)
    data_root: TreePath
    out_url: str | None = None  # URL prefix of out_root when it differs; None = data_url
    style: LayerStyle = field(default_factory=LayerStyle)
    selection: SelectionConfig = field(default_factory=SelectionConfig)

    @classmethod
    def from_config(
        cls, config: Config, data_url: str | None = None, out_url: str | None = None
    ) -> StateOptions:
        """``data_url``: explicit, else ``config.data_url``, else the public URL of a tree on
        an object store, else this server's ``/data``. ``out_url``: explicit, else the
        public URL of outputs on an object store apart from the tree, else ``data_url``."""
        url = (
            data_url
            or config.data_url
            or public_url(config.data_root)
            or f"http://{config.server.host}:{config.server.port}/data"
        )
        if out_url is None and str(config.out_root) != str(config.data_root):
            out_url = public_url(config.out_root)
        return cls(
            data_url=url.rstrip("/"),
            out_root=config.out_tree,
            data_root=config.data_tree,
            out_url=out_url.rstrip("/") if out_url else None,
            style=config.layers,
            selection=config.selection,
        )

    @property
    def layout(self) -> AnyLayout:
        return layout_of(self.out_root)


@dataclass
class BuiltState:
    state: dict[str, Any]
    decisions: list[Decision]
    messages: list[str]
    tomogram_id: str
    candidates: list[Candidate] = field(default_factory=list)  # the annotation layers
    left_out: list[LeftOut] = field(default_factory=list)  # files without their output
    curation: Curation | None = None

    def explanation(self) -> dict[str, Any]:
        return {
            "tomogram": self.tomogram_id,
            "curation": None if self.curation is None else self.curation.to_json(),
            "layers": [d.to_json() for d in self.decisions],
            "left_out": [item.to_json() for item in self.left_out],
            "stale": [d.layer for d in self.decisions if d.stale],
            "messages": list(self.messages),
        }


def resolve(
    catalogue: Catalogue, dataset_id: str, run_name: str, tomogram_id: str | None
) -> tuple[Run, Tomogram]:
    """The run and tomogram, or :class:`NotFoundError` naming what is unknown."""
    dataset = catalogue.datasets.get(dataset_id)
    if dataset is None:
        raise NotFoundError(f"unknown dataset {dataset_id!r} under {catalogue.root}")
    run = dataset.runs.get(run_name)
    if run is None:
        raise NotFoundError(f"dataset {dataset_id}: unknown run {run_name!r}")
    tomogram = run.default_tomogram() if tomogram_id is None else run.tomogram(tomogram_id)
    if tomogram is None:
        if tomogram_id is None:
            problems = catalogue.problems_under(run.path)
            why = f" ({'; '.join(problems[:3])})" if problems else ""
            raise NotFoundError(f"run {dataset_id}/{run_name} has no tomogram{why}")
        known = ", ".join(sorted(t.id for t in run.tomograms)) or "none"
        raise NotFoundError(
            f"run {dataset_id}/{run_name}: unknown tomogram {tomogram_id!r} (known: {known})"
        )
    return run, tomogram


def _url(prefix: str, relative: str) -> str:
    return f"{prefix}/{quote(relative.lstrip('/'), safe='/._-~')}"


def _image(
    run: Run,
    tomogram: Tomogram,
    options: StateOptions,
    reader: SummaryReader,
    messages: list[str],
) -> layers.ImageLayerOptions | None:
    if tomogram.omezarr_relative is None:
        messages.append(f"tomogram {tomogram.id}: no OME-Zarr; image layer left out")
        return None
    path = options.layout.tomogram_summary(run, tomogram)
    try:
        summary = reader.summary(path)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        # No absolute path in messages: they are served by /explain.
        reason = exc.strerror if isinstance(exc, OSError) else exc
        messages.append(f"tomogram {tomogram.id}: summary {path.name} unreadable ({reason})")
        summary = None
    try:
        failure = reader.failure(failure_path(path))
    except (ValueError, OSError):
        failure = None
    if failure is not None:
        messages.append(
            f"tomogram {tomogram.id}: statistics stale: the last precompute failed "
            f"({failure.describe()})"
        )
    stats = summary.extra.get("stats") if summary is not None else None
    found, note = tomogram_contrast(stats, tomogram)
    if note is not None:
        messages.append(note)
    style = options.style
    return layers.ImageLayerOptions(
        name=run.name,
        url="zarr://" + _url(options.data_url, tomogram.omezarr_relative),
        contrast_2d=found.contrast_2d if found else None,
        contrast_3d=found.contrast_3d if found else None,
        gain=style.image_gain,
        volume_rendering=style.volume_rendering,
        depth_samples=style.volume_rendering_depth_samples,
    )


def _colour_key(c: Candidate) -> colors.ColourKey:
    a = c.annotation
    identity = f"{c.object_key}|{a.id}|{a.voxel_spacing:g}|{c.shape}"
    return colors.ColourKey(identity, (numeric_id(a.id), f"{a.voxel_spacing:g}|{c.shape}"))


def _palette(cands: list[Candidate]) -> list[str]:
    """Layer colours; particle models take the colour of their picks' layer (one thing,
    drawn two ways), so adding them moves no other layer's colour."""

    own = [i for i, c in enumerate(cands) if c.layer_type != "orientedmesh"]
    colour = dict(zip(own, colors.assign([_colour_key(cands[i]) for i in own]), strict=True))
    picks = {cands[i].file_key: colour[i] for i in own}
    return [
        colour.get(i) or picks.get(c.file_key) or colors.assign([_colour_key(c)])[0]
        for i, c in enumerate(cands)
    ]


def _source_url(c: Candidate, options: StateOptions) -> str:
    prefix = options.out_url or options.data_url
    return "precomputed://" + _url(prefix, relative_key(c.output, options.out_root))


def build_state(
    catalogue: Catalogue,
    dataset_id: str,
    run_name: str,
    tomogram_id: str | None,
    options: StateOptions,
    reader: SummaryReader | None = None,
) -> BuiltState:
    """The viewer state of one tomogram (default: the run's), with every decision explained.

    Summaries are read through ``reader``; pass one that lives as long as the catalogue to
    reuse parsed summaries across builds (default: a fresh one, nothing shared).
    """
    run, tomogram = resolve(catalogue, dataset_id, run_name, tomogram_id)
    reader = reader if reader is not None else SummaryReader()
    messages: list[str] = []
    image = _image(run, tomogram, options, reader, messages)
    gathered = gather(run, tomogram, options.out_root, reader)
    cands = gathered.candidates
    context = Context(gathered.flags, _extent(tomogram))
    chosen_by = curation(cands, options.selection, context.flags)
    messages.append(chosen_by.reason)
    messages.extend(gathered.messages)
    decisions = select(cands, options.selection, context)
    palette = _palette(cands)
    composed = compose(
        layers.image_layer(image) if image is not None else None,
        cands,
        decisions,
        palette,
        tomogram,
        [_source_url(c, options) for c in cands],
        options.style,
    )
    if image is not None:
        image_decision = Decision(image.name, True, "shown: the tomogram itself", rule="image")
        decisions = [image_decision, *decisions]
    if tomogram.size_xyz is None:
        messages.append(f"tomogram {tomogram.id}: size unknown; camera left to Neuroglancer")
    state = viewer_state(
        tomogram.voxel_spacing,
        Camera(tomogram.size_xyz),
        composed.layers,
        image.name if image is not None else None,
        options.style,
        Chrome(
            title=page_title(options.style.title, run.name, dataset_id, tomogram.id),
            cross_section_depth=composed.cross_section_depth,
        ),
    )
    return BuiltState(state, decisions, messages, tomogram.id, cands, gathered.left_out, chosen_by)


def _extent(tomogram: Tomogram) -> tuple[float, float, float] | None:
    """The tomogram's physical size in metres (x, y, z), as the summaries' grids cover it."""
    if tomogram.size_xyz is None:
        return None
    x, y, z = (n * tomogram.voxel_spacing * layers.ANGSTROM for n in tomogram.size_xyz)
    return x, y, z


def state_inputs_mtime(
    catalogue: Catalogue,
    dataset_id: str,
    run_name: str,
    tomogram_id: str | None,
    options: StateOptions,
) -> float:
    """Newest mtime of the state's inputs (:func:`ngstate.inputs.state_inputs`).

    A caller can cache a built state and rebuild it when this grows. Missing files count
    as 0 (their later appearance changes the folder holding them, which is included).
    """
    run, tomogram = resolve(catalogue, dataset_id, run_name, tomogram_id)
    newest = 0.0
    for path in state_inputs(run, tomogram, options.layout).paths():
        if not isinstance(path, Path):
            continue  # on an object store: no mtime to watch (the index refresh covers it)
        try:
            newest = max(newest, os.stat(path).st_mtime)
        except OSError:
            continue
    return newest
