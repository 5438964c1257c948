"""Batch bookkeeping: counts, the end-of-run table and the JSON report file."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryoet_ng import atomic
from cryoet_ng.catalogue import CatalogueWarning
from precompute.runner import Outcome

REPORT_FORMAT = "cryoet-ng-precompute-report/1"
STATUSES = ("done", "skipped", "failed")


@dataclass
class BatchReport:
    """Everything a batch did; filled in as outcomes arrive."""

    data_root: str
    out_root: str
    executor: str  # "in-process", "local cluster (N workers)" or the scheduler address
    warnings: list[CatalogueWarning] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    counts: Counter[str] = field(default_factory=Counter)  # jobs per status, kept current

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.counts[outcome.status] += 1

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        """Nothing failed and no input was skipped as unreadable by the catalogue."""
        return not self.failures and not any(w.skipped for w in self.warnings)

    def table(self) -> str:
        """A fixed-width table: jobs and summed job-seconds per status, wall time."""
        counts = self.counts
        seconds: dict[str, float] = dict.fromkeys(STATUSES, 0.0)
        for outcome in self.outcomes:
            seconds[outcome.status] += outcome.seconds
        rows: list[tuple[str, int | str, str]] = [
            (s, counts[s], f"{seconds[s]:.1f}") for s in STATUSES
        ]
        rows.append(("total", len(self.outcomes), f"{sum(seconds.values()):.1f}"))
        rows.append(("wall time", "", f"{self.seconds:.1f}"))
        rows.append(("input warnings", len(self.warnings), ""))
        lines = [f"{'status':<16}{'jobs':>6}{'seconds':>10}"]
        lines += [f"{name:<16}{n!s:>6}{secs:>10}" for name, n, secs in rows]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "format": REPORT_FORMAT,
            "data_root": self.data_root,
            "out_root": self.out_root,
            "executor": self.executor,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "counts": {s: counts[s] for s in STATUSES} | {"total": len(self.outcomes)},
            "failures": [_failure(o) for o in self.failures],
            "warnings": [
                {"file": str(w.path), "message": w.message, "skipped": w.skipped}
                for w in self.warnings
            ],
            "jobs": [o.to_json() for o in sorted(self.outcomes, key=lambda o: o.job)],
        }

    def write(self, path: Path) -> None:
        atomic.write_json(path, self.to_json())


def _failure(outcome: Outcome) -> dict[str, Any]:
    error = outcome.error.to_json() if outcome.error is not None else {}
    return {"job": outcome.job, "output": outcome.output} | error
