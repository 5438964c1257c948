"""A tomogram's OME-Zarr -> its image statistics (contrast limits), in the summary only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from cryoet_ng.catalogue import Run, Tomogram
from cryoet_ng.config import Config
from cryoet_ng.layout import Layout
from cryoet_ng.summaries import Summary
from precompute.jobs import TOMOGRAM, TomogramJob


@dataclass(frozen=True)
class TomogramStatistics(TomogramJob):
    job_type: ClassVar[str] = "tomogram"
    inputs: ClassVar[tuple[str, ...]] = (TOMOGRAM,)
    priority: ClassVar[int] = 1

    @classmethod
    def from_tomogram(
        cls, run: Run, tomogram: Tomogram, layout: Layout
    ) -> Iterator[TomogramStatistics]:
        if tomogram.omezarr_path is not None:
            yield cls.create(run, tomogram, layout, tomogram.omezarr_path)

    def options(self, config: Config) -> dict[str, Any]:
        return {"contrast_clip_fraction": config.precompute.contrast_clip_fraction}

    def convert(self, config: Config) -> Summary:
        from precompute import tomogram

        return tomogram.compute_stats(self, config.precompute.contrast_clip_fraction)
