"""The registered job types: what ``cryoet-ng precompute`` makes from a data tree.

Adding a job type: a module here defining a subclass of :class:`~precompute.jobs.AnnotationJob`
(or :class:`~precompute.jobs.TomogramJob`) with ``job_type``, ``inputs``, ``priority``,
``from_annotation`` (or ``from_tomogram``), ``options`` and ``convert``, and one
``REGISTRY.register`` line below. The order of registration is the order of discovery.
"""

from precompute.job_types.masks import SegmentationMasks
from precompute.job_types.points import PointAnnotations
from precompute.job_types.tomogram import TomogramStatistics
from precompute.jobs import JobRegistry

REGISTRY = JobRegistry()
REGISTRY.register(TomogramStatistics)
REGISTRY.register(PointAnnotations)
REGISTRY.register(SegmentationMasks)

__all__ = ["REGISTRY", "PointAnnotations", "SegmentationMasks", "TomogramStatistics"]
