"""Choose the path of one point-like file: in memory, or from disk beyond the budget.

Files that may hold more than ``options.points_in_memory`` records go through
:mod:`.external` (bounded memory; byte-identical outputs, tested); the others, and those
pyarrow's streaming parser rejects (so the JSON scan can name the bad line), through
:mod:`.writer`.
"""

from __future__ import annotations

from cryoet_ng.config import LayerStyle, PrecomputeConfig
from cryoet_ng.summaries import Summary
from precompute.jobs import AnnotationJob
from precompute.points import external
from precompute.points.ndjson import read_records
from precompute.points.writer import convert_records


def convert(job: AnnotationJob, options: PrecomputeConfig, style: LayerStyle) -> Summary:
    """Convert one point-like ndjson file into ``job.output``; return its summary (the
    runner writes it)."""
    records = None
    if external.wanted(job, options):
        try:
            result = external.convert_external(job, options, style)
        except external.Rejected:
            result = None  # pyarrow cannot parse it: the in-memory reader names the line
        if isinstance(result, Summary):
            return result
        records = result
    if records is None:
        records = read_records(job.source, job.shape, options, job.volume_size_xyz)
    return convert_records(job, records, options, style)
