"""Shared core of the cryo-ET Neuroglancer tools: configuration, the data-tree catalogue,
the output layout and the summary format. ``precompute``, ``ngstate`` and ``server``
build on it; it imports none of them."""

__version__ = "0.1.0"
