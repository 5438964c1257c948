"""Physical particle diameters: the size a pick's marker is drawn at, and oriented axes' length.

One rule, shared by the precompute (the ``diameter`` property baked into the annotations and
the axis length of oriented points) and by ngstate (the marker size in the layer's shader),
so the two never disagree:

1. the annotation's own ``annotation_object.diameter`` (Ångström), where the metadata has it;
2. else :data:`DIAMETERS`, a table of common complexes keyed by ontology id;
3. else the configured fallback (``layers.default_diameter_nm``).

Why a table: portal metadata rarely carries a diameter (it is not in the schema), so without
one a ribosome and a nucleosome get the same marker although one is three times the other.
Every entry names its source. Diameters are of the whole complex, rounded to 0.5 nm; a
marker is a sphere, so elongated complexes get their largest dimension's order of magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# The CZ Imaging Institute's "CryoET Object Identification" challenge (Kaggle 2024; portal
# dataset 10440; Peck et al., "A realistic phantom dataset for benchmarking cryo-ET data
# annotation", bioRxiv 2024.11.04.621686) scores a pick by the particle radius its copick
# configuration gives: apo-ferritin 60 Å, beta-amylase 65 Å, beta-galactosidase 90 Å,
# ribosome 150 Å, thyroglobulin 130 Å.
_CZII = "CZII CryoET Object Identification challenge copick config (portal dataset 10440)"


@dataclass(frozen=True)
class TableEntry:
    diameter_nm: float
    name: str
    source: str


DIAMETERS: dict[str, TableEntry] = {
    "GO:0022626": TableEntry(30.0, "cytosolic (80S) ribosome", f"{_CZII}: radius 150 Å"),
    "GO:0070288": TableEntry(12.0, "ferritin complex (apo-ferritin)", f"{_CZII}: radius 60 Å"),
    "UNIPROTKB:P10537": TableEntry(13.0, "beta-amylase", f"{_CZII}: radius 65 Å"),
    "UNIPROTKB:P00722": TableEntry(18.0, "beta-galactosidase", f"{_CZII}: radius 90 Å"),
    "UNIPROTKB:P01267": TableEntry(26.0, "thyroglobulin", f"{_CZII}: radius 130 Å"),
    "GO:0000786": TableEntry(
        11.0,
        "nucleosome",
        "Luger et al. 1997, Nature 389:251 (core particle ~110 Å across, 57 Å high)",
    ),
}

Origin = Literal["metadata", "table", "fallback"]


@dataclass(frozen=True)
class Diameter:
    """A particle diameter and where it came from (said in explanations and the README)."""

    angstrom: float
    origin: Origin

    def voxels(self, spacing_angstrom: float) -> float:
        return self.angstrom / spacing_angstrom

    def describe(self) -> str:
        return f"{self.angstrom / 10:g} nm ({self.origin})"


def metadata_diameter(annotation_object: dict[str, Any] | None) -> float | None:
    """``annotation_object.diameter`` in Ångström when it is a positive number."""
    value = (annotation_object or {}).get("diameter")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def table_diameter(ontology_id: str | None) -> float | None:
    """The table's diameter in Ångström for ``ontology_id`` (case-insensitive)."""
    entry = DIAMETERS.get(str(ontology_id or "").strip().upper())
    return None if entry is None else entry.diameter_nm * 10.0


def particle_diameter(annotation_object: dict[str, Any] | None, fallback_nm: float) -> Diameter:
    """The diameter a pick of ``annotation_object`` is drawn at (see the module docstring)."""
    from_metadata = metadata_diameter(annotation_object)
    if from_metadata is not None:
        return Diameter(from_metadata, "metadata")
    from_table = table_diameter((annotation_object or {}).get("id"))
    if from_table is not None:
        return Diameter(from_table, "table")
    return Diameter(fallback_nm * 10.0, "fallback")
