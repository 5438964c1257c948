"""Write a portal-layout data tree one item at a time: the one tree builder.

The sample generator (:func:`cryoet_ng.sample.generate`), the tests and the benchmarks build
their trees with :class:`TreeBuilder`, so every tree has the same layout and metadata
(spec sections 1-4): ``<dataset>/dataset_metadata.json``, ``<dataset>/<run>/run_metadata.json``,
``Alignments/<id>/``, ``Reconstructions/VoxelSpacing<vs>/{Tomograms,Annotations}/<id>/``.
Metadata documents come from :mod:`cryoet_ng.sample.metadata`, data files from the sample's
writers (OME-Zarr, MRC, ndjson); every ``metadata=`` argument replaces top-level fields of
the document written.

Data is optional, so one builder serves both kinds of tree:

- a sample tree (volumes and annotation data, read by the precompute and the real viewer);
- a metadata-only tree (ngstate tests, the state benchmark): ``tomogram(run)`` without a
  volume writes a header-only OME-Zarr (``omezarr=False``: none, though listed), and a
  :class:`~cryoet_ng.sample.annotations.Source` without data is listed, not written.

Stand-in precompute outputs for such trees are in :mod:`cryoet_ng.sample.outputs`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cryoet_ng.catalogue import voxel_spacing_dirname
from cryoet_ng.sample import metadata as md
from cryoet_ng.sample.annotations import AnnotationSpec, Target, write_annotation
from cryoet_ng.sample.files import write_bytes, write_json
from cryoet_ng.sample.omezarr import (
    Pyramid,
    downsample_mean,
    write_mrc,
    write_omezarr,
    write_omezarr_group,
)
from cryoet_ng.sample.spec import (
    VOXEL_SPACING,
    AnnotationRecord,
    RunRecord,
    TomogramRecord,
)

FIRST_ID = 100  # the portal numbers tomograms and annotations from 100 per folder
TILTS = 41  # -60 to +60 degrees in 3 degree steps
NO_MRC_LIMIT = 1 << 62  # mrc_max_bytes that writes every MRC twin


def _merge(document: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    return document | dict(overrides or {})


@dataclass(frozen=True)
class RunRef:
    """A run written by :meth:`TreeBuilder.run`: where it is and the tomogram grid it aligns."""

    dataset_id: str
    name: str
    voxel_spacing: float  # Å, of the tomogram (the alignment's volume)
    size_xyz: tuple[int, int, int]  # voxels at voxel_spacing
    alignment: str  # bucket-relative alignment_metadata.json

    @property
    def folder(self) -> str:
        """Bucket-relative ``<dataset>/<run>``."""
        return f"{self.dataset_id}/{self.name}"

    def spacing_folder(self, voxel_spacing: float) -> str:
        """Bucket-relative ``<dataset>/<run>/Reconstructions/VoxelSpacing<vs>``."""
        return f"{self.folder}/Reconstructions/{voxel_spacing_dirname(voxel_spacing)}"

    def size_at(self, voxel_spacing: float) -> tuple[int, int, int]:
        """The tomogram's size on a grid binned by an integer factor (rounded up, as zarr
        levels are); raises for a spacing that is not an integer binning."""
        factor = voxel_spacing / self.voxel_spacing
        k = round(factor)
        if k < 1 or abs(factor - k) > 1e-6:
            raise ValueError(f"{self.folder}: {voxel_spacing} Å is not a binning of the tomogram")
        x, y, z = (-(-n // k) for n in self.size_xyz)
        return x, y, z

    def record(self) -> RunRecord:
        return RunRecord(self.dataset_id, self.name, self.alignment)


def key_photos(volume: np.ndarray) -> tuple[bytes, bytes]:
    """Central z slice as snapshot (mean +- 3 sd contrast, dense = dark) and 128 px thumbnail."""
    plane = volume[volume.shape[0] // 2].astype(np.float64)
    lo, hi = plane.mean() - 3 * plane.std(), plane.mean() + 3 * plane.std()
    image = Image.fromarray(np.clip((plane - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8))
    encoded = []
    for img in (image, image.resize((128, 128), Image.Resampling.BILINEAR)):
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded[0], encoded[1]


class TreeBuilder:
    """Writes datasets, depositions, runs, tomograms and annotations under ``root``.

    Each method writes its data files first and its metadata file last (the portal's order)
    and returns what it wrote. Call them in tree order: a run before its tomograms and
    annotations.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def dataset(
        self,
        dataset_id: str,
        title: str = "Synthetic cells",
        organism: str = "Schizosaccharomyces pombe",
        taxonomy_id: int = 4896,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """``<dataset>/dataset_metadata.json``."""
        document = md.dataset_metadata(dataset_id, title, organism, taxonomy_id)
        write_json(self.root / dataset_id / "dataset_metadata.json", _merge(document, metadata))

    def dataset_photos(self, dataset_id: str, volume: np.ndarray) -> None:
        """``<dataset>/Images/{snapshot,thumbnail}.png``, from a tomogram (z, y, x)."""
        snapshot, thumbnail = key_photos(volume)
        write_bytes(self.root / dataset_id / "Images" / "snapshot.png", snapshot)
        write_bytes(self.root / dataset_id / "Images" / "thumbnail.png", thumbnail)

    def deposition(self, deposition_id: int, *, metadata: Mapping[str, Any] | None = None) -> None:
        """``depositions_metadata/<id>/deposition_metadata.json``."""
        folder = self.root / "depositions_metadata" / str(deposition_id)
        document = md.deposition_metadata(deposition_id)
        write_json(folder / "deposition_metadata.json", _merge(document, metadata))

    def run(
        self,
        dataset_id: str,
        name: str,
        size_xyz: tuple[int, int, int],
        voxel_spacing: float = VOXEL_SPACING,
        *,
        alignment_id: str = str(FIRST_ID),
        metadata: Mapping[str, Any] | None = None,
    ) -> RunRef:
        """``run_metadata.json`` and one alignment (IMOD stub files, volume in Å)."""
        folder = f"{dataset_id}/{name}"
        write_json(
            self.root / folder / "run_metadata.json", _merge(md.run_metadata(name), metadata)
        )
        align = f"{folder}/Alignments/{alignment_id}"
        tlt = "".join(f"{-60.0 + 3.0 * i:.2f}\n" for i in range(TILTS)).encode()
        xf = b"".join(b"1.0 0.0 0.0 1.0 0.0 0.0\n" for _ in range(TILTS))
        write_bytes(self.root / align / f"{name}.tlt", tlt)
        write_bytes(self.root / align / f"{name}.xf", xf)
        alignment = f"{align}/alignment_metadata.json"
        files = [f"{align}/{name}.{ext}" for ext in ("xf", "tlt")]
        write_json(self.root / alignment, md.alignment_metadata(size_xyz, voxel_spacing, files))
        return RunRef(dataset_id, name, voxel_spacing, size_xyz, alignment)

    def tomogram(
        self,
        run: RunRef,
        volume: np.ndarray | None = None,
        *,
        tomogram_id: str = str(FIRST_ID),
        omezarr: bool = True,
        mrc: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> TomogramRecord:
        """A tomogram at the run's spacing: OME-Zarr pyramid, MRC twin, key photos, metadata.

        ``volume`` (z, y, x float32) must match the run's size. Without it only the metadata
        and a header-only OME-Zarr are written; with ``omezarr=False`` no OME-Zarr at all
        (the metadata still names it, as a portal tree with a missing image would).
        """
        spacing, size_xyz = run.voxel_spacing, run.size_xyz
        if volume is not None and volume.shape != size_xyz[::-1]:
            raise ValueError(f"{run.folder}: volume {volume.shape} != run size {size_xyz[::-1]}")
        vs = run.spacing_folder(spacing)
        folder = f"{vs}/Tomograms/{tomogram_id}"
        zarr = f"{folder}/{run.name}.zarr"
        if omezarr and volume is not None:
            write_omezarr(self.root / zarr, Pyramid.build(volume, spacing, downsample_mean))
        elif omezarr:
            write_omezarr_group(self.root / zarr, spacing)
        mrc_file = f"{folder}/{run.name}.mrc" if volume is not None and mrc else None
        if volume is not None and mrc_file is not None:
            write_mrc(self.root / mrc_file, volume, spacing, "cryoet-ng sample tomogram")
        images = f"{vs}/Images/{tomogram_id}"
        if volume is not None:
            snapshot, thumbnail = key_photos(volume)
            write_bytes(self.root / images / "key-photo-snapshot.png", snapshot)
            write_bytes(self.root / images / "key-photo-thumbnail.png", thumbnail)
        paths = {
            "omezarr_dir": zarr,
            "mrc_file": mrc_file,
            "alignment": run.alignment,
            "neuroglancer_config": (
                f"{vs}/NeuroglancerPrecompute/{tomogram_id}-neuroglancer_config.json"
            ),
            "snapshot": f"{images}/key-photo-snapshot.png",
            "thumbnail": f"{images}/key-photo-thumbnail.png",
        }
        document = md.tomogram_metadata(run.name, spacing, size_xyz, paths)
        document = _merge(document, metadata)
        write_json(self.root / folder / "tomogram_metadata.json", document)
        return TomogramRecord(
            dataset_id=run.dataset_id,
            run_name=run.name,
            tomogram_id=tomogram_id,
            voxel_spacing=spacing,
            size_xyz=size_xyz,
            omezarr_dir=zarr,
            mrc_file=mrc_file,
            is_visualization_default=bool(document["is_visualization_default"]),
            alignment_metadata_path=run.alignment,
        )

    def annotation(
        self,
        run: RunRef,
        spec: AnnotationSpec,
        *,
        voxel_spacing: float | None = None,
        annotation_id: str | None = None,
        mrc_max_bytes: int = NO_MRC_LIMIT,
        metadata: Mapping[str, Any] | None = None,
    ) -> AnnotationRecord:
        """``Annotations/<id>/``: every source's data file, then ``<slug>-<version>.json``.

        ``voxel_spacing`` defaults to the run's (another one must be an integer binning of
        it); ``annotation_id`` to the next free id (from 100) in that spacing's folder; MRC
        twins of masks larger than ``mrc_max_bytes`` are listed but not written.
        """
        spacing = run.voxel_spacing if voxel_spacing is None else voxel_spacing
        annotations = f"{run.spacing_folder(spacing)}/Annotations"
        if annotation_id is None:
            annotation_id = str(self._next_id(self.root / annotations))
        target = Target(
            root=self.root,
            folder=f"{annotations}/{annotation_id}",
            dataset_id=run.dataset_id,
            run_name=run.name,
            voxel_spacing=spacing,
            size_xyz=run.size_at(spacing),
            alignment=run.alignment,
            mrc_max_bytes=mrc_max_bytes,
        )
        return write_annotation(target, spec, metadata)

    @staticmethod
    def _next_id(folder: Path) -> int:
        if not folder.is_dir():
            return FIRST_ID
        taken = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
        return max(taken, default=FIRST_ID - 1) + 1
