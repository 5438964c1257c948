"""``cryoet-ng sample``: a synthetic but realistic portal-layout data tree.

Deterministic for a seed (byte-identical files). See :mod:`cryoet_ng.sample.generate`
for what is written and the spec in shared/portal-data-format.md sections 1-4.
"""

from __future__ import annotations

import argparse
import logging
import time

from cryoet_ng.sample.generate import generate
from cryoet_ng.sample.spec import SIZES, AnnotationRecord, SampleManifest, TomogramRecord

__all__ = ["SIZES", "AnnotationRecord", "SampleManifest", "TomogramRecord", "generate", "main"]

log = logging.getLogger(__name__)


def main(args: argparse.Namespace) -> int:
    """CLI entry: ``args.out_dir``, ``args.seed``, ``args.size``."""
    start = time.perf_counter()
    try:
        manifest = generate(args.out_dir, seed=args.seed, size=args.size)
    except FileExistsError as exc:
        log.error("%s", exc)
        return 1
    log.info(
        "wrote %s (seed %d, size %s) in %.1f s: %s",
        args.out_dir,
        args.seed,
        args.size,
        time.perf_counter() - start,
        manifest.summary(),
    )
    for ann in manifest.annotations:
        shapes = "+".join(dict.fromkeys(ann.shapes))
        log.info(
            "  %s/%s %.3f %s %s (%s, %d)",
            ann.dataset_id,
            ann.run_name,
            ann.voxel_spacing,
            ann.annotation_id,
            ann.stem,
            shapes,
            ann.object_count,
        )
    return 0
