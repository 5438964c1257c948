"""Stand-in precompute outputs, to exercise ngstate and the server without running the precompute.

ngstate reads an output's ``info`` (only its annotation property ids) and its summary; the
server serves whatever files are there. So a tree from
:class:`~cryoet_ng.sample.builder.TreeBuilder` plus these stand-ins gives complete states in
milliseconds, where the real precompute of the test-size sample takes about 20 s. Paths come
from :mod:`cryoet_ng.layout`, as the precompute's do.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryoet_ng.catalogue import Annotation, Run, Tomogram
from cryoet_ng.layout import Layout
from cryoet_ng.sample.files import write_bytes, write_json
from cryoet_ng.summaries import Summary

ANNOTATIONS_TYPE = "neuroglancer_annotations_v1"


def annotation_info(shape: str) -> dict[str, Any]:
    """An annotation ``info`` declaring the properties the precompute gives ``shape``'s layers
    and the layer shaders use: ``diameter``, and ``line_color`` (oriented points, drawn as
    lines) or ``color``."""
    colour = "line_color" if shape == "OrientedPoint" else "color"
    return {
        "@type": ANNOTATIONS_TYPE,
        "properties": [{"id": "diameter", "type": "float32"}, {"id": colour, "type": "rgb"}],
    }


def write_output(
    out_root: Path,
    run: Run,
    annotation: Annotation,
    shape: str,
    *,
    info: Mapping[str, Any] | None = None,
    files: Mapping[str, bytes] | None = None,
    summary: Summary | None = None,
) -> Path:
    """The output folder of (``annotation``, ``shape``) under ``out_root``, holding ``info``
    (if given) and ``files`` (relative path -> bytes), plus its summary (if given)."""
    output = Layout(out_root).annotation_output(run, annotation, shape)
    output.mkdir(parents=True, exist_ok=True)
    if info is not None:
        write_json(output / "info", dict(info))
    for relative, data in (files or {}).items():
        write_bytes(output / relative, data)
    if summary is not None:
        summary.write(Layout(out_root).annotation_summary(run, annotation, shape))
    return output


def fill_missing_outputs(
    out_root: Path,
    run: Run,
    info: Mapping[str, Any],
    files: Mapping[str, bytes] | None = None,
) -> int:
    """:func:`write_output` for every converted file of ``run``
    (:meth:`Annotation.converted_file`) whose output folder is missing (what a precompute
    run left undone); returns how many were written."""
    written = 0
    for annotation in run.annotations:
        for file in annotation.files:
            output = Layout(out_root).annotation_output(run, annotation, file.shape)
            if annotation.is_converted(file) and not output.exists():
                write_output(out_root, run, annotation, file.shape, info=info, files=files)
                written += 1
    return written


def write_tomogram_stats(
    out_root: Path, run: Run, tomogram: Tomogram, stats: Mapping[str, Any]
) -> Path:
    """The tomogram summary ngstate takes contrast limits from (``contrast_2d``/``_3d``)."""
    path = Layout(out_root).tomogram_summary(run, tomogram)
    Summary("tomogram", extra={"stats": dict(stats)}).write(path)
    return path
