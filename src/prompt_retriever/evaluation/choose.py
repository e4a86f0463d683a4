"""Choosing the system to serve: on the dev split only, by mean NDCG@10 over the query families.

A golden set mixes query families that behave differently: template queries (genre, theme, title,
keywords, made from the prompt's own words), natural-language queries (what a writer types), LLM
queries. A fixed system can win one and lose another, so the choice is the best *mean* over every
family that has dev queries. Test numbers are measured after the choice and never feed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import InputError
from ..golden.goldenset import GoldenSet, Query
from ..search.systems import System
from .metrics import evaluate

PRIMARY = "ndcg@10"
NATURAL_KINDS = ("natural", "natural_judged")
FAMILY_KINDS = {"natural": NATURAL_KINDS, "llm": ("llm",), "handwritten": ("handwritten",)}


def family_of(kind: str) -> str:
    """The family a query kind belongs to: natural, llm, handwritten, or template (every heuristic kind)."""
    for family, kinds in FAMILY_KINDS.items():
        if kind in kinds:
            return family
    return "template"


def families(gs: GoldenSet, split: str, *, judged_only: bool = False) -> dict[str, list[Query]]:
    """The queries of `split` by family (families without queries are left out). `judged_only` keeps,
    of the natural family, only the queries judged against the whole corpus."""
    out: dict[str, list[Query]] = {}
    for q in gs.split_queries(split) if gs.splits.get(split) else []:
        if judged_only and q.kind == "natural":
            continue
        out.setdefault(family_of(q.kind), []).append(q)
    return dict(sorted(out.items()))


def family_scores(system: System, gs: GoldenSet, split: str, *, judged_only: bool = False) -> dict[str, float]:
    """`PRIMARY` of `system` on each family of `split`."""
    scores = {}
    for fam, queries in families(gs, split, judged_only=judged_only).items():
        run = system.search([(q.id, q.text) for q in queries], 10)
        scores[fam] = evaluate(run, {q.id: gs.qrels[q.id] for q in queries}, [PRIMARY])[PRIMARY]
    return scores


def family_subset(gs: GoldenSet, split: str, family: str, *, judged_only: bool = False) -> GoldenSet:
    """A view of `gs` whose `split` holds only the queries of `family` (other splits unchanged), e.g. the
    template test split, or the natural-language test queries judged against the whole corpus."""
    from dataclasses import replace

    ids = [q.id for q in families(gs, split, judged_only=judged_only).get(family, [])]
    return replace(gs, splits={**gs.splits, split: ids})


@dataclass(frozen=True)
class Choice:
    """The system chosen on dev, with every candidate's dev scores (family -> NDCG@10) and their mean."""

    name: str
    dev: dict[str, dict[str, float]]  # system name -> family -> dev NDCG@10
    mean: dict[str, float] = field(default_factory=dict)  # system name -> mean over the families

    @property
    def families(self) -> list[str]:
        return sorted(next(iter(self.dev.values()), {}))


def choose_system(systems: Sequence[System], gs: GoldenSet) -> Choice:
    """The system with the best mean dev NDCG@10 over the families with dev queries; ties go to the one
    listed first (list the simpler systems first). Only the dev split is read."""
    if not systems:
        raise InputError("no systems to choose from")
    dev = {s.name: family_scores(s, gs, "dev") for s in systems}
    if not any(dev.values()):
        raise InputError("the golden set has no dev queries: a system cannot be chosen without them")
    mean = {name: sum(v.values()) / len(v) for name, v in dev.items()}
    best = max(systems, key=lambda s: (round(mean[s.name], 12), -systems.index(s)))
    return Choice(best.name, dev, mean)
