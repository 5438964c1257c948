"""Whether a person chose a tomogram's visible layers (rule 0 of :mod:`ngstate.selection`).

Curation: a tomogram none of whose annotation files is flagged
``is_visualization_default: true`` is *uncurated*, and under ``auto+author`` gets the
automatic choice for every layer; any true flag means a person chose, and the flags are
honoured (true shown, false hidden, the automatic choice decides the layers without a
flag). Evidence: ``false`` is what the portal's ingestion writes when nobody chose (its
default), and in the portal's curated dataset configurations 83 of 84 datasets flag at
least one source true (69 flag every source true; portal-data-format.md, section 5), so
"all false" is, in practice, "nobody chose". Before this rule an uncurated run opened
with the tomogram alone: the automatic choice never ran on real portal metadata.
``auto`` ignores the flags, ``author`` uses nothing else (an uncurated run then shows
only the tomogram); :class:`Curation` says which case applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryoet_ng.config import Policy, SelectionConfig
from ngstate.candidates import Candidate


@dataclass(frozen=True)
class Curation:
    """Whether a person chose the visible layers of this tomogram, and the policy applied."""

    curated: bool
    policy: Policy  # configured
    applied: Policy  # what decided
    flagged: dict[str, int]  # files flagged true, false, absent
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "curated": self.curated,
            "policy": self.policy,
            "applied": self.applied,
            "flags": dict(self.flagged),
            "reason": self.reason,
        }


def curation(
    candidates: Sequence[Candidate],
    config: SelectionConfig,
    flags: tuple[bool | None, ...] | None = None,
) -> Curation:
    """Curated (any true flag) or not, and what decides. ``flags``: is_visualization_default
    of every drawn file of the tomogram, with or without an output (default: the
    candidates' own)."""
    if flags is None:
        flags = tuple(c.author_flag for c in candidates)
    count = {
        "true": sum(f is True for f in flags),
        "false": sum(f is False for f in flags),
        "absent": sum(f is None for f in flags),
    }
    curated = count["true"] > 0
    files = (
        f"{count['true']} of {len(flags)} annotation files flagged is_visualization_default true"
    )
    policy = config.policy
    if policy == "auto":
        return Curation(curated, policy, policy, count, f"policy auto: {files}, not consulted")
    if policy == "author":
        reason = f"policy author: only the flags decide; {files}"
        if not curated:
            reason += " (uncurated: only the tomogram is shown)"
        return Curation(curated, policy, policy, count, reason)
    if curated:
        reason = (
            f"curated: {files}; the flags are honoured, the automatic choice decides "
            "layers without one (auto+author)"
        )
        return Curation(curated, policy, policy, count, reason)
    reason = (
        f"uncurated: none of the {len(flags)} annotation files is flagged "
        f"is_visualization_default true ({count['false']} false, {count['absent']} absent; "
        "false is the portal's ingestion default when nobody chose), so the automatic "
        "choice decides every layer"
    )
    return Curation(curated, policy, "auto", count, reason)
