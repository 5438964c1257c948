"""Point-like annotations (Point, OrientedPoint, InstanceSegmentation) -> precomputed annotations.

Usage: ``convert(job, config.precompute, config.layers) -> Summary``. See :mod:`.writer`.
"""

from precompute.points.writer import convert

__all__ = ["convert"]
