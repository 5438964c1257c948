"""Errors raised for bad input, and the record of a failed job: always name the file, and
the line or record when known."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryoet_ng.store import Location, TreePath


@dataclass(frozen=True)
class Failure:
    """Why one job failed, as the batch reports it (table, log, JSON report)."""

    file: str
    message: str
    line: int | None = None
    traceback: str | None = None  # for unexpected exceptions: a converter bug

    def __str__(self) -> str:
        line = f":{self.line}" if self.line is not None else ""
        return f"{self.file}{line}: {self.message}"

    def to_json(self) -> dict[str, object]:
        obj: dict[str, object] = {"file": self.file, "line": self.line, "message": self.message}
        if self.traceback is not None:
            obj["traceback"] = self.traceback
        return obj


class InputError(ValueError):
    """An input file cannot be converted. Nothing is written for it; the batch goes on."""

    def __init__(self, path: TreePath | str, message: str, line: int | None = None) -> None:
        self.path: TreePath = path if isinstance(path, Location) else Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")

    def failure(self) -> Failure:
        return Failure(str(self.path), self.reason, self.line)
