"""``cryoet-ng validate``: re-read every output with readers this project did not write.

Walks every ``NeuroglancerPrecompute`` folder under the output root
(:meth:`cryoet_ng.layout.Layout.precompute_dirs`) and checks:

* every output folder has a summary that parses (the completion marker), and no
  ``.tmp-*`` leftovers of an interrupted write remain;
* annotations open with neuroglancer's own precomputed annotation reader
  (:mod:`neuroglancer.read_precomputed_annotations`, on tensorstore kvstores, sharded or
  not): the spatial index yields exactly the summary's number of distinct annotations, and
  those ids are found again through the ``by_id`` index;
* segmentations open with tensorstore's ``neuroglancer_precomputed`` driver at every scale
  and are read back (whole when small, else one chunk); at full resolution the labels and
  their voxel counts must equal the summary's; meshes load with cloud-volume, and segment
  properties parse.

Every problem is a :class:`Problem` (``path: reason``); the command prints them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoet_ng.atomic import TMP_PREFIX
from cryoet_ng.layout import PRECOMPUTE_DIR, Layout, is_summary, output_of_summary, summary_path
from cryoet_ng.summaries import Summary

log = logging.getLogger(__name__)
# Volumes up to this many voxels are read whole; larger ones by one chunk per scale.
FULL_READ_VOXELS = 128 * 1024 * 1024
# by_id lookups per annotation layer (each is one kvstore read).
BY_ID_SAMPLES = 64
MESH_SAMPLES = 3


@dataclass(frozen=True)
class Problem:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class Invalid(Exception):
    """One check failed; the message is the reason."""


def validate_tree(root: Path) -> tuple[int, list[Problem]]:
    """(number of outputs checked, problems) for every precompute folder under ``root``."""
    folders = list(Layout(root).precompute_dirs())
    if not folders:
        return 0, [Problem(root, f"no {PRECOMPUTE_DIR} folder found")]
    checked, problems = 0, []
    for folder in folders:
        for entry in sorted(folder.iterdir()):
            reason = None
            try:
                if entry.name.startswith(TMP_PREFIX):
                    reason = "leftover temporary entry of an interrupted write"
                elif entry.is_dir():
                    checked += 1
                    check_output(entry)
                elif is_summary(entry):
                    check_summary_file(entry)
            except Invalid as exc:
                reason = str(exc)
            except Exception as exc:  # a reader choking is exactly what we look for
                reason = f"unreadable: {type(exc).__name__}: {exc}"
            if reason is not None:
                problems.append(Problem(entry, reason))
    return checked, problems


def read_summary(path: Path) -> Summary:
    if not path.is_file():
        raise Invalid(f"no summary {path.name} (the output was never completed)")
    try:
        return Summary.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise Invalid(f"summary {path.name} does not parse: {exc}") from exc


def check_summary_file(path: Path) -> None:
    """A summary with no output folder beside it must be a tomogram's."""
    summary = read_summary(path)
    output = output_of_summary(path)
    if summary.kind != "tomogram" and not output.is_dir():
        raise Invalid(f"{summary.kind} summary without its output folder {output.name}")


def check_output(folder: Path) -> None:
    summary = read_summary(summary_path(folder))
    info = _read_json(folder / "info")
    if info.get("@type") == "neuroglancer_annotations_v1":
        check_annotations(folder, summary)
    elif info.get("type") in ("segmentation", "image") and "scales" in info:
        check_segmentation(folder, info, summary)
    else:
        raise Invalid("info is neither precomputed annotations nor a multiscale volume")


def check_annotations(folder: Path, summary: Summary) -> None:
    from neuroglancer.read_precomputed_annotations import AnnotationReader

    reader = AnnotationReader({"driver": "file", "path": str(folder)})
    # Lines may be stored in every spatial cell they cross, so count distinct ids.
    ids = {int(a.id) for a in reader.get_within_spatial_bounds()}
    # "annotations" counts the encoded records (three lines per oriented point), "count" the
    # source records.
    expected = int(summary.extra.get("annotations", summary.count))
    if summary.kind == "annotation" and len(ids) != expected:
        raise Invalid(f"spatial index holds {len(ids)} annotations, summary says {expected}")
    if reader.by_id:
        for annotation_id in sorted(ids)[:BY_ID_SAMPLES]:
            if annotation_id not in reader.by_id:
                raise Invalid(f"annotation {annotation_id} of the spatial index missing from by_id")
            reader.by_id[annotation_id]  # decodes: raises on a wrong record size


def check_segmentation(folder: Path, info: dict[str, Any], summary: Summary) -> None:
    import tensorstore as ts

    for index, scale in enumerate(info["scales"]):
        volume = ts.open(
            {
                "driver": "neuroglancer_precomputed",
                "kvstore": {"driver": "file", "path": str(folder) + "/"},
                "scale_index": index,
            },
            read=True,
        ).result()
        if int(np.prod(volume.shape)) <= FULL_READ_VOXELS:
            data = volume.read().result()
            if index == 0 and summary.kind == "segmentation":
                _compare_labels(data, summary, scale.get("key", "0"))
        else:
            volume[_first_chunk(volume.domain, scale["chunk_sizes"][0])].read().result()
    if "mesh" in info:
        check_meshes(folder, summary)
    if "segment_properties" in info:
        props = _read_json(folder / info["segment_properties"] / "info")
        if props.get("@type") != "neuroglancer_segment_properties":
            raise Invalid("segment_properties/info is not neuroglancer_segment_properties")


def _first_chunk(domain: Any, chunk_xyz: list[int]) -> tuple[slice, ...]:
    """Index of the first chunk of an (x, y, z, channel) volume, clipped to the domain."""
    lower, upper = domain.inclusive_min, domain.exclusive_max
    box = [slice(lower[i], min(lower[i] + chunk_xyz[i], upper[i])) for i in range(3)]
    return (*box, slice(None))


def _compare_labels(data: np.ndarray, summary: Summary, key: str) -> None:
    import fastremap

    labels, counts = fastremap.unique(np.asarray(data), return_counts=True)
    found = {int(k): int(v) for k, v in zip(labels, counts, strict=True) if k != 0}
    nonzero = sum(found.values())
    if nonzero != summary.count:
        raise Invalid(f"scale {key} has {nonzero} labelled voxels, summary says {summary.count}")
    if summary.labels is not None and found != summary.labels:
        raise Invalid(f"scale {key} labels {sorted(found)} differ from the summary's")


def check_meshes(folder: Path, summary: Summary) -> None:
    from cloudvolume import CloudVolume

    volume = CloudVolume(f"file://{folder}", progress=False, cache=False)
    for label in sorted(summary.labels or {})[:MESH_SAMPLES]:
        mesh = volume.mesh.get(label)
        mesh = mesh[label] if isinstance(mesh, dict) else mesh
        if mesh is None or len(mesh.vertices) == 0:
            raise Invalid(f"mesh of segment {label} is missing or empty")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise Invalid(f"missing {path.name}") from exc
    except ValueError as exc:
        raise Invalid(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise Invalid(f"{path.name} is not a JSON object")
    return obj
