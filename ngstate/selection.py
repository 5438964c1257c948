"""Which layers are visible by default, and why (README.md, "Default-visible layers").

0. Curation (:mod:`ngstate.curation`): under ``auto+author`` a tomogram none of whose files
   is flagged true gets the automatic choice; any true flag means the flags are honoured.
1. Same object and same shape family (point-like / volume-like): one is shown, the best by
   rank (vetted oriented picks first, then ground truth > curator-recommended >
   manual/hybrid > automated > simulated, then richer shape, newer version). An object is
   its ontology id, name, description and state; an automated prediction also defers to
   ground truth of the same ontology term and family whatever its description.
2. Occlusion: a mask hiding a large share of another layer conflicts with it. The visible
   set is the maximum-weight set with no conflicting pair (exact branch and bound per
   connected component up to ``exact_limit`` layers, greedy beyond), so a container loses
   to the several layers it would hide.
3. Policy ``auto`` / ``author`` / ``auto+author`` (the author's explicit flag is a fixed
   choice the automatic search works around), then the ``max_visible`` cap.
4. Clutter: a pick layer whose markers would cover at least ``clutter_threshold`` (30%) of
   a slice (:mod:`ngstate.clutter`: count, marker diameter, occupancy grid) is not shown by
   the automatic choice when it is a prediction (not ground truth); under an author's true
   flag, or as ground truth, it is shown and its reason carries a warning. The demo's run
   10001/TS_100 (200,000 template-matching peaks, 59% of the densest slice) opened buried
   under them; its ground-truth ribosomes cover 0.2% (5% at 30 nm). The threshold lies
   between the two (README, "Default-visible layers").
Every layer gets a :class:`Decision` naming the other layers involved; a stale layer (its
last precompute failed, :mod:`cryoet_ng.failures`) says so in its reason.

Metadata-only rules, measured against the portal curators' own choices
(tests/data/curator_choices.json: 32 dataset configs, 182 layers, no summaries; agreement
before any of them 0.813, after 0.940, every third dataset held out 0.864 -> 1.000; figures
without the cap; layers = what removing the rule alone costs):

* object = id + *name* (+ description, state): authors reuse a term for different things
  (10009, 10492) and the curators show each: 5 layers.
* vetted oriented picks (GT, manual or hybrid OrientedPoint) rank first within an object:
  the refined sub-tomogram-averaging set over its plain input picks (10455, 10468, 10469):
  8 layers.
* container prior, only for a mask without occupancy summary whose GO term is a
  compartment (cytoplasm, nucleus, lumen, CC root; ``candidates.CONTAINER_TERMS``): it is
  assumed to hide every non-compartment layer and the weighted search decides: 7 layers.
* the all-membranes mask (GO:0016020) without summary is hidden when specific membrane
  masks (nuclear envelope, ER/mitochondrial membranes...) are present: 2 layers.
* automated prediction defers to ground truth of the same term (10002): 1 layer.

Not reproduced (curator taste, 11 layers): 10000/10001 hide compact organelles (vesicle,
vacuole, lipid droplet, multivesicular body) and fatty-acid-synthase picks that hide
nothing; 10468 shows both the 2D-classified and the refined ribosome picks. The default
cap of 12 costs 22 more layers (curators show up to 30), 0.819 overall.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from cryoet_ng.config import SelectionConfig
from ngstate import clutter, occlusion
from ngstate.candidates import (
    GENERIC_MEMBRANE,
    Candidate,
    is_container,
    is_specific_membrane,
    ontology_id,
)
from ngstate.curation import curation
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
    warnings: tuple[str, ...] = ()  # also at the end of the reason: crowded, stale
    stale: bool = False
    clutter: float | None = None  # share of a slice the markers cover (pick layers)

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
            "warnings": list(self.warnings),
            "stale": self.stale,
            "clutter": None if self.clutter is None else round(self.clutter, 4),
        }


@dataclass(frozen=True)
class Context:
    """What the choice needs beyond the candidates (from :func:`ngstate.candidates.gather`)."""

    # is_visualization_default of every drawn file of the tomogram, with or without an
    # output; None: the candidates' own flags.
    flags: tuple[bool | None, ...] | None = None
    extent_m: tuple[float, float, float] | None = None  # the tomogram, for the clutter rule


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


def _crowding(
    candidates: Sequence[Candidate], config: SelectionConfig, context: Context
) -> list[clutter.Clutter | None]:
    """Rule 4's measure of every pick layer (None for masks), once per selection."""
    return [
        clutter.assess(c.annotation, c.summary, context.extent_m, config.clutter_diameter_nm)
        if c.family == "point"
        else None
        for c in candidates
    ]


class _Selector:
    def __init__(
        self,
        candidates: Sequence[Candidate],
        config: SelectionConfig,
        crowding: list[clutter.Clutter | None],
    ) -> None:
        self.cands = list(candidates)
        self.config = config
        n = len(self.cands)
        self.clutter = crowding
        self.visible = [False] * n
        self.decisions: list[Decision | None] = [None] * n
        occupancies = [c.summary.occupancy if c.summary else None for c in self.cands]
        occluders = [c.family == "volume" for c in self.cands]
        self.share = occlusion.share_matrix(occupancies, occluders)
        hits = self.share >= config.occlusion_threshold
        self.prior = self._container_prior()
        # occludes[i, j]: i would hide j (measured, or assumed by the container prior)
        self.occludes = (hits & (self.share > 0)) | self.prior
        self.umbrella: dict[int, list[int]] = {}  # generic membrane -> specific ones shown

    def _container_prior(self) -> np.ndarray:
        """Assumed occlusion by compartment masks that have no occupancy summary.

        A mask of a GO compartment term (cytoplasm, nucleus, lumen, the CC root...) is a
        filled volume around the picks and organelles of the cell, so without geometry it is
        assumed to hide every non-compartment layer; the weighted search then hides it when
        what it would cover is worth more (the usual case).
        """
        n = len(self.cands)
        containers = np.array(
            [
                c.family == "volume" and c.summary is None and is_container(c.annotation)
                for c in self.cands
            ],
            dtype=bool,
        )
        others = ~np.array([is_container(c.annotation) for c in self.cands], dtype=bool)
        prior = containers[:, None] & others[None, :]
        if n:
            np.fill_diagonal(prior, False)
        return prior

    def crowded(self, i: int) -> bool:
        found = self.clutter[i]
        return found is not None and found.share >= self.config.clutter_threshold

    def decide(
        self, i: int, visible: bool, rule: str, reason: str, others: Iterable[str] = ()
    ) -> None:
        c = self.cands[i]
        found = self.clutter[i]
        warnings = []
        if visible and found is not None and self.crowded(i):
            warnings.append(
                f"warning: crowded, {found.describe()}, above the "
                f"{self.config.clutter_threshold:.0%} clutter threshold"
            )
        if c.stale is not None:
            warnings.append(c.stale)
        self.decisions[i] = Decision(
            layer=c.name,
            visible=visible,
            reason="; ".join([reason, *warnings]),
            others=tuple(others),
            rule=rule,
            tier=c.tier_label,
            weight=c.weight,
            author_flag=c.author_flag,
            has_summary=c.summary is not None,
            warnings=tuple(warnings),
            stale=c.stale is not None,
            clutter=None if found is None else found.share,
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
        crowded = self._hide_crowded_predictions(forced_on | forced_off)
        pool = [i for i in range(n) if i not in forced_off and i not in crowded]
        winners, losers = self._dedupe(pool, forced_on)
        winners = self._prediction_defers_to_truth(winners, losers, forced_on)
        winners = self._same_object_forms(winners, losers, forced_on)
        winners = self._generic_membrane(winners, forced_on)
        chosen = self._non_occluding(winners, forced_on)
        for i in chosen:
            self.visible[i] = True
        self._explain_conflicts(winners, chosen, forced_on)
        self._explain_duplicates(losers)
        self._explain_umbrella()

    def _hide_crowded_predictions(self, fixed: set[int]) -> set[int]:
        """Rule 4: predictions whose markers would bury the slice are not shown by default."""
        hidden = set()
        for i, c in enumerate(self.cands):
            found = self.clutter[i]
            if i in fixed or found is None or not self.crowded(i) or c.annotation.ground_truth:
                continue
            hidden.add(i)
            reason = (
                f"hidden: {c.tier_label} too crowded to show by default: {found.describe()}, "
                f"at or above the {self.config.clutter_threshold:.0%} clutter threshold"
            )
            self.decide(i, False, "clutter", reason + self.note(i))
        return hidden

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

    def _prediction_defers_to_truth(
        self, winners: list[int], losers: dict[int, int], forced_on: set[int]
    ) -> list[int]:
        """An automated prediction defers to ground truth of the same ontology term.

        Rule 1 keys objects on name and description too, so a prediction described as such
        ("Actin DeePiCt training prediction", dataset 10002) is not grouped with the ground
        truth it was trained on; the ontology term and shape family still say it is the
        same thing.
        """
        truth: dict[tuple[str, str], int] = {}
        for i in winners:
            c = self.cands[i]
            if c.annotation.ground_truth and ontology_id(c.annotation):
                key = (ontology_id(c.annotation), c.family)
                if key not in truth or c.rank_key < self.cands[truth[key]].rank_key:
                    truth[key] = i
        kept = []
        for i in winners:
            a = self.cands[i].annotation
            j = truth.get((ontology_id(a), self.cands[i].family))
            if (
                j is not None
                and i not in forced_on
                and not a.ground_truth
                and a.method_type == "automated"
            ):
                losers[i] = j
            else:
                kept.append(i)
        return kept

    def _generic_membrane(self, winners: list[int], forced_on: set[int]) -> list[int]:
        """Without geometry, an all-membranes mask repeats the specific membrane masks.

        When the tomogram also has masks of specific membranes (nuclear envelope, ER or
        mitochondrial membranes...), the generic "membrane" mask (GO:0016020) is their union
        drawn again; it is hidden in their favour (dataset 10000). Alone, or beside picks
        and organelle volumes, it stays.
        """
        specific = [
            j
            for j in winners
            if self.cands[j].family == "volume" and is_specific_membrane(self.cands[j].annotation)
        ]
        if not specific:
            return winners
        kept = []
        for i in winners:
            c = self.cands[i]
            if (
                i not in forced_on
                and c.family == "volume"
                and c.summary is None
                and ontology_id(c.annotation) == GENERIC_MEMBRANE
            ):
                self.umbrella[i] = specific
            else:
                kept.append(i)
        return kept

    def _same_object_forms(
        self, winners: list[int], losers: dict[int, int], forced_on: set[int]
    ) -> list[int]:
        """Points lying inside a mask of the same object are one thing shown twice.

        Keep the better-ranked form; on equal rank the mask (the richer form: a volume
        with a mesh), as the portal's curators do for instance points beside their mask.
        """

        def key(i: int) -> tuple[object, ...]:
            c = self.cands[i]
            a = c.annotation
            return (c.tier, not a.curator_recommended, c.family != "volume", c.rank_key)

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
            if hides and self.prior[i].any():
                parts[-1] += (
                    f" (container prior: {c.annotation.object_name} is a compartment that "
                    "encloses them; no occupancy summary)"
                )
            measured = [j for j in hidden_by if not self.prior[j, i]]
            assumed = [j for j in hidden_by if self.prior[j, i]]
            if measured:
                pct = max(self.share[j, i] for j in measured)
                parts.append(
                    f"lies {pct:.0%} inside visible " + _join([names[j] for j in measured])
                )
            if assumed:
                parts.append(
                    "assumed inside visible compartment "
                    + _join([names[j] for j in assumed])
                    + " (container prior; no occupancy summary)"
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

    def _explain_umbrella(self) -> None:
        for i, specific in self.umbrella.items():
            c = self.cands[i]
            names = [self.cands[j].name for j in specific]
            reason = (
                f"hidden: {c.tier_label} all-membranes mask; the specific membrane masks "
                f"{_join(names)} show the same membranes (no occupancy summary)"
            )
            self.decide(i, False, "duplicate", reason + self.note(i), names)

    def cap(self) -> None:
        limit = self.config.max_visible
        shown = [i for i, v in enumerate(self.visible) if v]
        if len(shown) <= limit:
            return

        def key(i: int) -> tuple[object, ...]:
            decision = self.decisions[i]
            forced = decision is not None and decision.rule == "author"
            return (not forced, -self.cands[i].weight, self.cands[i].rank_key)

        shown.sort(key=key)
        kept = [self.cands[i].name for i in shown[:limit]]
        for i in shown[limit:]:
            self.visible[i] = False
            reason = f"hidden: visible-layer cap ({limit}) reached; ranks below the shown layers"
            self.decide(i, False, "cap", reason, kept[-3:])


def select(
    candidates: Sequence[Candidate], config: SelectionConfig, context: Context | None = None
) -> list[Decision]:
    """One :class:`Decision` per candidate, in the candidates' order."""
    context = context if context is not None else Context()
    applied = curation(candidates, config, context.flags).applied
    crowding = _crowding(candidates, config, context)
    if applied != config.policy:  # an uncurated run: the automatic choice alone
        decisions = _run(candidates, dataclasses.replace(config, policy=applied), crowding)
        return [_flag_not_taken(d) for d in decisions]
    decisions = _run(candidates, config, crowding)
    if config.policy == "auto+author":
        # A curator auditing the author's flags wants to see where the automatic choice
        # differs, and why.
        automatic = _run(candidates, dataclasses.replace(config, policy="auto"), crowding)
        decisions = [_with_automatic(d, a) for d, a in zip(decisions, automatic, strict=True)]
    return decisions


def _flag_not_taken(decision: Decision) -> Decision:
    """In an uncurated run, a false flag is the ingestion default: say it was not taken."""
    if decision.author_flag is not False:
        return decision
    note = "; uncurated run: its is_visualization_default false is the ingestion default"
    reason = "; ".join([_without_warnings(decision) + note, *decision.warnings])
    return dataclasses.replace(decision, reason=reason)


def _run(
    candidates: Sequence[Candidate],
    config: SelectionConfig,
    crowding: list[clutter.Clutter | None],
) -> list[Decision]:
    selector = _Selector(candidates, config, crowding)
    if config.policy == "author":
        selector.author_only()
    else:
        selector.auto(honour_author=config.policy == "auto+author")
    selector.cap()
    return [d for d in selector.decisions if d is not None]


def _without_warnings(decision: Decision) -> str:
    reason = decision.reason
    for warning in decision.warnings:
        reason = reason.replace("; " + warning, "")
    return reason


def _with_automatic(decision: Decision, automatic: Decision) -> Decision:
    """An author-decided layer's reason, completed with what the automatic choice says
    (warnings stay last)."""
    if decision.rule != "author":
        return decision
    if automatic.visible == decision.visible:
        note = "; the automatic choice agrees"
    else:
        note = f"; the automatic choice differs ({_without_warnings(automatic)})"
    reason = "; ".join([_without_warnings(decision) + note, *decision.warnings])
    others = tuple(dict.fromkeys(decision.others + automatic.others))
    return dataclasses.replace(decision, reason=reason, others=others)
