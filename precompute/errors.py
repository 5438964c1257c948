"""Errors raised for bad input: always name the file, and the line or record when known."""

from __future__ import annotations

from pathlib import Path

from cryoet_ng.store import Location, TreePath


class InputError(ValueError):
    """An input file cannot be converted. Nothing is written for it; the batch goes on."""

    def __init__(self, path: TreePath | str, message: str, line: int | None = None) -> None:
        self.path: TreePath = path if isinstance(path, Location) else Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")

    def to_json(self) -> dict[str, object]:
        return {"file": str(self.path), "line": self.line, "message": self.reason}
