"""The summary JSON written beside every precompute output, read by ngstate.

Summaries let the state service decide visibility without touching bulk data.
Format (``"format": "cryoet-ng-summary/1"``), all lengths in metres, axes x, y, z:

``kind``
    ``"annotation"`` (points, oriented points, instance points), ``"segmentation"``
    (masks) or ``"tomogram"`` (image statistics).
``count``
    Annotations (points: one per record), or non-zero voxels for a segmentation.
``bounds``
    ``{"lower": [x,y,z], "upper": [x,y,z]}``: exact bounds of the content, or
    ``null`` when empty. Points: the coordinates; masks: the voxel boxes' corners.
``occupancy``
    A coarse grid over the tomogram's physical extent:
    ``{"origin": [x,y,z], "cell_size": [dx,dy,dz], "shape": [nx,ny,nz],
    "measure": "count" | "fraction", "values": [...]}``.
    ``values`` is flat with x fastest (index ``x + nx*(y + ny*z)``). ``count``: annotations
    whose position falls in the cell. ``fraction``: share of the cell's volume covered by
    the mask (0..1, 4 decimals). Cells are cubes; the longest axis has at most
    :data:`GRID_CELLS` cells, so layers of the same tomogram share one grid.
``labels``
    Segmentation only: ``{"<label>": voxel_count}`` for every label present.
``fingerprint``
    Hash of the inputs and the output-format version; a batch re-run skips outputs whose
    fingerprint is unchanged.
Other keys (``shape``, ``annotation_id``, ``output``, ``source``, ``voxel_spacing``, ``stats``,
``notes``) describe what was converted. Where summaries live: :mod:`cryoet_ng.layout`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cryoet_ng import atomic
from cryoet_ng.vectors import triple

FORMAT = "cryoet-ng-summary/1"
GRID_CELLS = 16


@dataclass(frozen=True)
class Grid:
    origin: tuple[float, float, float]
    cell_size: float
    shape: tuple[int, int, int]  # nx, ny, nz

    @classmethod
    def for_extent(cls, extent_m: tuple[float, float, float], cells: int = GRID_CELLS) -> Grid:
        """Cubic cells over [0, extent) with ``cells`` along the longest axis."""
        longest = max(max(extent_m), 1e-12)
        size = longest / cells
        shape = triple(max(1, int(np.ceil(e / size - 1e-9))) for e in extent_m)
        return cls((0.0, 0.0, 0.0), size, shape)

    def cell_of(self, xyz_m: np.ndarray) -> np.ndarray:
        """Flat cell index (x fastest) of each row of an (n, 3) array, clipped to the grid."""
        ijk = np.floor((xyz_m - np.asarray(self.origin)) / self.cell_size).astype(np.int64)
        ijk = np.clip(ijk, 0, np.asarray(self.shape) - 1)
        nx, ny, _ = self.shape
        return ijk[:, 0] + nx * (ijk[:, 1] + ny * ijk[:, 2])

    def centres(self) -> np.ndarray:
        """(n_cells, 3) physical centres in flat order."""
        nx, ny, nz = self.shape
        z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
        ijk = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
        return np.asarray(self.origin) + (ijk + 0.5) * self.cell_size

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Occupancy:
    grid: Grid
    measure: Literal["count", "fraction"]
    values: np.ndarray  # flat, x fastest

    @classmethod
    def of_points(cls, grid: Grid, xyz_m: np.ndarray) -> Occupancy:
        counts = np.bincount(grid.cell_of(xyz_m), minlength=grid.size) if len(xyz_m) else None
        return cls(grid, "count", counts if counts is not None else np.zeros(grid.size, np.int64))

    def weights(self) -> np.ndarray:
        """Amount of content per cell, comparable across layers of one kind."""
        return self.values.astype(np.float64)

    def to_json(self) -> dict[str, Any]:
        values = self.values
        out = (
            values.astype(int).tolist() if self.measure == "count" else np.round(values, 4).tolist()
        )
        return {
            "origin": list(self.grid.origin),
            "cell_size": [self.grid.cell_size] * 3,
            "shape": list(self.grid.shape),
            "measure": self.measure,
            "values": out,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Occupancy:
        grid = Grid(tuple(obj["origin"]), float(obj["cell_size"][0]), tuple(obj["shape"]))
        values = np.asarray(obj["values"], dtype=np.float64)
        if values.size != grid.size:
            raise ValueError(f"occupancy has {values.size} values for a grid of {grid.size}")
        return cls(grid, obj["measure"], values)


@dataclass
class Summary:
    kind: Literal["annotation", "segmentation", "tomogram"]
    count: int = 0
    bounds: tuple[list[float], list[float]] | None = None
    occupancy: Occupancy | None = None
    labels: dict[int, int] | None = None
    fingerprint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = dict(self.extra)
        obj.update(
            format=FORMAT,
            kind=self.kind,
            count=int(self.count),
            bounds=None
            if self.bounds is None
            else {"lower": self.bounds[0], "upper": self.bounds[1]},
        )
        if self.occupancy is not None:
            obj["occupancy"] = self.occupancy.to_json()
        if self.labels is not None:
            obj["labels"] = {str(k): int(v) for k, v in sorted(self.labels.items())}
        if self.fingerprint is not None:
            obj["fingerprint"] = self.fingerprint
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Summary:
        if obj.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} summary (format={obj.get('format')!r})")
        known = {"format", "kind", "count", "bounds", "occupancy", "labels", "fingerprint"}
        bounds = obj.get("bounds")
        return cls(
            kind=obj["kind"],
            count=int(obj.get("count", 0)),
            bounds=None if not bounds else (list(bounds["lower"]), list(bounds["upper"])),
            occupancy=Occupancy.from_json(obj["occupancy"]) if obj.get("occupancy") else None,
            labels={int(k): int(v) for k, v in obj["labels"].items()} if "labels" in obj else None,
            fingerprint=obj.get("fingerprint"),
            extra={k: v for k, v in obj.items() if k not in known},
        )

    def write(self, path: Path) -> None:
        atomic.write_json(path, self.to_json())


def read_summary(path: Path) -> Summary | None:
    """The summary at ``path``, or None when it does not exist."""
    try:
        return Summary.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
