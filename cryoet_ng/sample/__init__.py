"""A synthetic but realistic portal-layout data tree.

Deterministic for a seed (byte-identical files). See :mod:`cryoet_ng.sample.generate`
for what is written, and :mod:`cryoet_ng.catalogue` for the portal layout it follows.
"""

from __future__ import annotations

from cryoet_ng.sample.generate import generate
from cryoet_ng.sample.spec import SIZES, AnnotationRecord, SampleManifest, TomogramRecord

__all__ = ["SIZES", "AnnotationRecord", "SampleManifest", "TomogramRecord", "generate"]
