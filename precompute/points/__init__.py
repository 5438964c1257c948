"""Point-like annotations (Point, OrientedPoint, InstanceSegmentation) -> precomputed annotations.

Usage: ``convert(job, config.precompute, config.layers) -> Summary``. See :mod:`.convert`.
"""

from precompute.points.convert import convert

__all__ = ["convert"]
