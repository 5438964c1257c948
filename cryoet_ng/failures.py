"""Failure records: ``<output>.failed.json`` says the last precompute of an input failed.

The batch writes one (atomically) beside a job's summary when the job fails, and removes
it when the job later succeeds or is found current (:mod:`precompute.task`). ngstate reads
it as one of a state's inputs (:func:`ngstate.inputs.state_inputs`), so the server's
freshness check sees it appear and go:

* output present, record present: the layer is **stale**: it shows what an earlier run
  made from an older input, and the input as it is now could not be converted;
* output missing, record present: the layer is left out *because the precompute failed*,
  and the explanation says why.

Why a file beside the output rather than the batch report: the report is one file per
batch run, wherever ``--report`` put it, and the next run (of other datasets, say)
replaces it; the record lives and dies with the output it qualifies, under the same
output root, and needs no extra reader.

Format ``cryoet-ng-failure/1``: ``job`` (the batch's job name), ``file`` (the failing
input, relative to the data root), ``line`` (or null), ``message`` (no server paths),
``failed_at`` (POSIX seconds).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryoet_ng import atomic

FORMAT = "cryoet-ng-failure/1"


@dataclass(frozen=True)
class FailureRecord:
    job: str
    file: str  # relative to the data root
    message: str
    line: int | None = None
    failed_at: float = 0.0  # POSIX seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "job": self.job,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "failed_at": round(self.failed_at, 3),
        }

    @classmethod
    def from_json(cls, obj: Any) -> FailureRecord:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} record")
        line = obj.get("line")
        return cls(
            job=str(obj.get("job", "")),
            file=str(obj.get("file", "")),
            message=str(obj.get("message", "")),
            line=line if isinstance(line, int) and not isinstance(line, bool) else None,
            failed_at=float(obj.get("failed_at") or 0.0),
        )

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()

    @property
    def when(self) -> str:
        """``2024-06-01 12:00 UTC``."""
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.failed_at))

    def describe(self) -> str:
        """``Annotations/101/x_point.ndjson line 3: bad coordinate (2024-06-01 12:00 UTC)``."""
        where = self.file + (f" line {self.line}" if self.line is not None else "")
        return f"{where}: {self.message} ({self.when})"


def write_failure(path: Path, record: FailureRecord) -> None:
    atomic.write_bytes(path, record.to_bytes())


def parse_failure(text: str) -> FailureRecord:
    """A record from its JSON text; ValueError when it is not one."""
    return FailureRecord.from_json(json.loads(text))
