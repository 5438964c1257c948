"""SegmentationMask, InstanceSegmentationMask (OME-Zarr, else MRC) -> precomputed
segmentation with meshes and segment properties."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from cryoet_ng.catalogue import VOLUME_SHAPES, Annotation, Run
from cryoet_ng.config import Config
from cryoet_ng.layout import Layout
from cryoet_ng.summaries import Summary
from precompute.job_types.common import precompute_options
from precompute.jobs import AnnotationJob


@dataclass(frozen=True)
class SegmentationMasks(AnnotationJob):
    job_type: ClassVar[str] = "segmentation"
    inputs: ClassVar[tuple[str, ...]] = VOLUME_SHAPES
    priority: ClassVar[int] = 2  # meshes and pyramids: the longest jobs, first

    @classmethod
    def from_annotation(
        cls, run: Run, annotation: Annotation, layout: Layout
    ) -> Iterator[SegmentationMasks]:
        """One job per mask shape: the OME-Zarr file, or the MRC when the zarr is missing."""
        for shape in cls.inputs:
            chosen = annotation.converted_file(shape)
            if chosen is not None:
                yield cls.create(
                    run, annotation, layout, shape, chosen.path, signature=chosen.signature
                )

    def options(self, config: Config) -> dict[str, Any]:
        return precompute_options(config)

    def convert(self, config: Config) -> Summary:
        from precompute import segmentation

        return segmentation.convert(self, config.precompute)
