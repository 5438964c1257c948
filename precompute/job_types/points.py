"""Point, OrientedPoint, InstanceSegmentation ndjson -> precomputed annotations."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from cryoet_ng.catalogue import POINT_SHAPES, Annotation, Run
from cryoet_ng.config import Config
from cryoet_ng.layout import Layout
from cryoet_ng.summaries import Summary
from precompute.job_types.common import precompute_options
from precompute.jobs import AnnotationJob


@dataclass(frozen=True)
class PointAnnotations(AnnotationJob):
    job_type: ClassVar[str] = "points"
    inputs: ClassVar[tuple[str, ...]] = POINT_SHAPES
    priority: ClassVar[int] = 0  # the shortest jobs: last

    @classmethod
    def from_annotation(
        cls, run: Run, annotation: Annotation, layout: Layout
    ) -> Iterator[PointAnnotations]:
        """One job per point shape: its first ndjson file."""
        for shape in cls.inputs:
            f = annotation.converted_file(shape)
            if f is not None:
                yield cls.create(run, annotation, layout, f.shape, f.path, signature=f.signature)

    def options(self, config: Config) -> dict[str, Any]:
        # The whole layer style too, since lines and point sizes follow it; a style change
        # only redoes the (cheap) point layers.
        return precompute_options(config) | {"layers": dataclasses.asdict(config.layers)}

    def convert(self, config: Config) -> Summary:
        from precompute import points

        return points.convert(self, config.precompute, config.layers)
