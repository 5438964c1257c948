"""Which layers are visible by default, and why (shared/DESIGN.md, "Default-layer selection").

1. Same object and same shape family (point-like / volume-like): one is shown, the best by
   rank (ground truth > curator-recommended > manual/hybrid > automated > simulated, then
   richer shape, newer version).
2. Occlusion: a mask hiding a large share of another layer conflicts with it. The visible
   set is the maximum-weight set with no conflicting pair (exact branch and bound per
   connected component up to ``exact_limit`` layers, greedy beyond), so a container loses
   to the several layers it would hide.
3. Policy ``auto`` / ``author`` / ``auto+author`` (the author's explicit flag is a fixed
   choice the automatic search works around), then the ``max_visible`` cap.
Every layer gets a :class:`Decision` naming the other layers involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cryoet_ng.config import SelectionConfig
from ngstate import occlusion
from ngstate.candidates import Candidate
from ngstate.mwis import solve


@dataclass
class Decision:
    layer: str
    visible: bool
    reason: str
    others: tuple[str, ...] = ()
    rule: str = ""  # image, best, duplicate, occludes, occluded, author, cap, no-conflict
    tier: str = ""
    weight: float = 0.0
    author_flag: bool | None = None
    has_summary: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.layer,
            "visible": self.visible,
            "reason": self.reason,
            "others": list(self.others),
            "rule": self.rule,
            "tier": self.tier,
            "weight": self.weight,
            "author_flag": self.author_flag,
            "has_summary": self.has_summary,
        }


def _value(c: Candidate, volume_share: float) -> float:
    """Weight with tie-breakers: more layers (+0.01 each), then compact ones (+<=0.001)."""
    return c.weight + 0.01 + 0.001 * (1.0 - volume_share)


def _volume_share(c: Candidate) -> float:
    occ = c.summary.occupancy if c.summary is not None else None
    if occ is None or occ.measure != "fraction" or occ.grid.size == 0:
        return 0.0
    return float(np.clip(occ.values, 0, 1).mean())


def _join(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class _Selector:
    def __init__(self, candidates: Sequence[Candidate], config: SelectionConfig) -> None:
        self.cands = list(candidates)
        self.config = config
        n = len(self.cands)
        self.visible = [False] * n
        self.decisions: list[Decision | None] = [None] * n
        occupancies = [c.summary.occupancy if c.summary else None for c in self.cands]
        occluders = [c.family == "volume" for c in self.cands]
        self.share = occlusion.share_matrix(occupancies, occluders)
        hits = self.share >= config.occlusion_threshold
        self.occludes = hits & (self.share > 0)  # occludes[i, j]: i would hide j

    def decide(self, i: int, visible: bool, rule: str, reason: str, others=()) -> None:
        c = self.cands[i]
        self.decisions[i] = Decision(
            layer=c.name,
            visible=visible,
            reason=reason,
            others=tuple(others),
            rule=rule,
            tier=c.tier_label,
            weight=c.weight,
            author_flag=c.author_flag,
            has_summary=c.summary is not None,
        )

    def note(self, i: int) -> str:
        c = self.cands[i]
        return f"; {c.summary_note}" if c.summary_note else ""

    # -- policies -------------------------------------------------------------------------
    def author_only(self) -> None:
        for i, c in enumerate(self.cands):
            flag = c.author_flag
            word = "absent" if flag is None else str(flag).lower()
            self.visible[i] = bool(flag)
            verb = "shown" if flag else "hidden"
            reason = f"{verb}: author's is_visualization_default {word}"
            self.decide(i, bool(flag), "author", reason)

    def auto(self, honour_author: bool) -> None:
        n = len(self.cands)
        forced_on = {i for i in range(n) if honour_author and self.cands[i].author_flag is True}
        forced_off = {i for i in range(n) if honour_author and self.cands[i].author_flag is False}
        for i in forced_off:
            self.decide(i, False, "author", "hidden: author's is_visualization_default false")
        pool = [i for i in range(n) if i not in forced_off]
        winners, losers = self._dedupe(pool, forced_on)
        winners = self._same_object_forms(winners, losers, forced_on)
        chosen = self._non_occluding(winners, forced_on)
        for i in chosen:
            self.visible[i] = True
        self._explain_conflicts(winners, chosen, forced_on)
        self._explain_duplicates(losers)

    def _dedupe(self, pool: list[int], forced_on: set[int]) -> tuple[list[int], dict[int, int]]:
        groups: dict[tuple[str, str], list[int]] = {}
        for i in pool:
            c = self.cands[i]
            groups.setdefault((c.object_key, c.family), []).append(i)
        winners: list[int] = []
        losers: dict[int, int] = {}  # loser -> the layer it defers to
        for members in groups.values():
            members.sort(key=lambda i: self.cands[i].rank_key)
            kept = [i for i in members if i in forced_on] or members[:1]
            winners.extend(kept)
            for i in members:
                if i not in kept:
                    losers[i] = kept[0]
        return sorted(winners), losers

    def _same_object_forms(
        self, winners: list[int], losers: dict[int, int], forced_on: set[int]
    ) -> list[int]:
        """Points lying inside a mask of the same object are one thing shown twice.

        Keep the better-ranked form; on equal rank the mask (the richer form: a volume
        with a mesh), as the portal's curators do for instance points beside their mask.
        """

        def key(i: int) -> tuple[object, ...]:
            c = self.cands[i]
            return (c.rank_key[:3], c.family != "volume", c.rank_key[3:])

        conflict = self.occludes | self.occludes.T
        dropped: set[int] = set()
        for i in winners:
            for j in winners:
                if (
                    i < j
                    and conflict[i, j]
                    and self.cands[i].object_key == self.cands[j].object_key
                ):
                    if i in dropped or j in dropped or {i, j} <= forced_on:
                        continue
                    best, worse = (i, j) if key(i) <= key(j) else (j, i)
                    if worse in forced_on:
                        best, worse = worse, best
                    dropped.add(worse)
                    losers[worse] = best
        return [i for i in winners if i not in dropped]

    def _non_occluding(self, winners: list[int], forced_on: set[int]) -> set[int]:
        conflict = self.occludes | self.occludes.T
        blocked = {j for i in forced_on for j in winners if conflict[i, j] and j not in forced_on}
        free = [i for i in winners if i not in forced_on and i not in blocked]
        values = [_value(self.cands[i], _volume_share(self.cands[i])) for i in free]
        adjacency = conflict[np.ix_(free, free)]
        picked = solve(np.asarray(values), adjacency, self.config.exact_limit)
        return set(forced_on) | {free[k] for k in picked}

    # -- explanations ---------------------------------------------------------------------
    def _explain_conflicts(self, winners: list[int], chosen: set[int], forced: set[int]) -> None:
        names = [c.name for c in self.cands]
        conflict = self.occludes | self.occludes.T
        for i in winners:
            c = self.cands[i]
            hides = [j for j in winners if self.occludes[i, j] and j in chosen and j != i]
            hidden_by = [j for j in winners if self.occludes[j, i] and j in chosen and j != i]
            if i in chosen:
                lost = [j for j in winners if j not in chosen and conflict[i, j]]
                if i in forced:
                    reason = "shown: author's is_visualization_default true"
                    rule = "author"
                elif lost:
                    reason = f"shown: {c.tier_label}; kept over {_join([names[j] for j in lost])}"
                    rule = "best"
                elif c.summary is None:
                    reason, rule = f"shown: {c.tier_label}; overlap unknown", "no-conflict"
                else:
                    reason = f"shown: {c.tier_label}; no overlap with other shown layers"
                    rule = "no-conflict"
                self.decide(i, True, rule, reason + self.note(i), [names[j] for j in lost])
                continue
            parts, others = [], []
            if hides:
                parts.append(
                    f"would occlude {len(hides)} visible layer{'s' * (len(hides) > 1)}: "
                    + _join([names[j] for j in hides])
                )
                others += [names[j] for j in hides]
            if hidden_by:
                pct = max(self.share[j, i] for j in hidden_by)
                parts.append(
                    f"lies {pct:.0%} inside visible " + _join([names[j] for j in hidden_by])
                )
                others += [names[j] for j in hidden_by if names[j] not in others]
            rule = "occludes" if hides else "occluded"
            self.decide(i, False, rule, "hidden: " + "; ".join(parts) + self.note(i), others)

    def _explain_duplicates(self, losers: dict[int, int]) -> None:
        for i, w in losers.items():
            c, best = self.cands[i], self.cands[w]
            what = "shown" if self.visible[w] else "ranks higher (itself hidden)"
            obj = c.annotation.object_name
            if c.family != best.family:
                what = f"shows the same {obj} as a volume and is {what}"
                if best.family == "point":
                    what = (
                        f"shows the same {obj} and is {'shown' if self.visible[w] else 'preferred'}"
                    )
            reason = f"hidden: {c.tier_label} of {obj}; {best.describe()} {what}"
            self.decide(i, False, "duplicate", reason + self.note(i), [best.name])

    def cap(self) -> None:
        limit = self.config.max_visible
        shown = [i for i, v in enumerate(self.visible) if v]
        if len(shown) <= limit:
            return

        def key(i: int) -> tuple[object, ...]:
            forced = self.decisions[i] is not None and self.decisions[i].rule == "author"  # type: ignore[union-attr]
            return (not forced, -self.cands[i].weight, self.cands[i].rank_key)

        shown.sort(key=key)
        kept = [self.cands[i].name for i in shown[:limit]]
        for i in shown[limit:]:
            self.visible[i] = False
            reason = f"hidden: visible-layer cap ({limit}) reached; ranks below the shown layers"
            self.decide(i, False, "cap", reason, kept[-3:])


def select(candidates: Sequence[Candidate], config: SelectionConfig) -> list[Decision]:
    """One :class:`Decision` per candidate, in the candidates' order."""
    selector = _Selector(candidates, config)
    if config.policy == "author":
        selector.author_only()
    else:
        selector.auto(honour_author=config.policy == "auto+author")
    selector.cap()
    return [d for d in selector.decisions if d is not None]
