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
from ..golden.feedback_family import FEEDBACK_KINDS
from ..golden.goldenset import GoldenSet, Query
from ..search.systems import System
from .evaluate import PRIMARY
from .metrics import evaluate

NATURAL_KINDS = ("natural", "natural_judged")
# "feedback": writers' requests judged from the feedback log or by the owner, split by time (golden/feedback_family.py)
FAMILY_KINDS = {
    "natural": NATURAL_KINDS,
    "llm": ("llm",),
    "handwritten": ("handwritten",),
    "feedback": FEEDBACK_KINDS,
}


def family_of(kind: str) -> str:
    """The family a query kind belongs to: natural, llm, handwritten, feedback, or template (every heuristic
    kind)."""
    for family, kinds in FAMILY_KINDS.items():
        if kind in kinds:
            return family
    return "template"


def families(gs: GoldenSet, split: str, *, judged_only: bool = False) -> dict[str, list[Query]]:
    """The queries of `split` by family (families without queries are left out). `judged_only` keeps,
    of the natural family, only the queries judged against the whole corpus when the split has any (else
    every natural query, e.g. those an LLM wrote, each judging its own prompt)."""
    out: dict[str, list[Query]] = {}
    queries = gs.split_queries(split) if gs.splits.get(split) else []
    judged = judged_only and any(q.kind == "natural_judged" for q in queries)
    for q in queries:
        if judged and q.kind == "natural":
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


REFERENCE_SUFFIX = "-reference"  # a family measured on a reference collection, e.g. "natural-reference"


@dataclass(frozen=True)
class Proxy:
    """A stand-in for a query family the collection lacks: twins of the candidate systems (same names,
    same kinds and weights) over another collection, and that collection's golden set (its dev split).
    Its families are reported with `REFERENCE_SUFFIX` ("natural-reference"), never as the collection's own."""

    systems: Sequence[System]
    golden: GoldenSet


@dataclass(frozen=True)
class Choice:
    """The system chosen on dev, with every candidate's dev scores (family -> NDCG@10) and their mean."""

    name: str
    dev: dict[str, dict[str, float]]  # system name -> family -> dev NDCG@10
    mean: dict[str, float] = field(default_factory=dict)  # system name -> mean over the families
    excluded: dict[str, str] = field(default_factory=dict)  # system name -> why it could not be chosen

    @property
    def families(self) -> list[str]:
        return sorted(next(iter(self.dev.values()), {}))


def natural_families(scores: dict[str, float]) -> list[str]:
    """The natural-language families among a system's dev scores (its own, or a reference's)."""
    return [f for f in scores if f.removesuffix(REFERENCE_SUFFIX) == "natural"]


def choose_system(
    systems: Sequence[System], gs: GoldenSet, *, proxy: Proxy | None = None, base: str | None = None
) -> Choice:
    """The system with the best mean dev NDCG@10 over the families with dev queries; ties go to the one
    listed first (list the simpler systems first). Only dev splits are read.

    `proxy`: families measured on another collection's dev queries by twins of `systems` (e.g. natural
    requests of a reference collection, for a collection that has none), averaged in like the others.
    `base`: the name of the base model's system; a system scoring below it on a natural-language family
    (its own or the proxy's) is never chosen."""
    if not systems:
        raise InputError("no systems to choose from")
    dev = {s.name: family_scores(s, gs, "dev") for s in systems}
    if proxy is not None:
        twins = {t.name: t for t in proxy.systems}
        for s in systems:
            scores = family_scores(twins[s.name], proxy.golden, "dev")
            dev[s.name] |= {f + REFERENCE_SUFFIX: v for f, v in scores.items()}
    if not any(dev.values()):
        raise InputError("the golden set has no dev queries: a system cannot be chosen without them")
    mean = {name: sum(v.values()) / len(v) for name, v in dev.items()}
    excluded: dict[str, str] = {}
    if base is not None and base in dev:
        for name, v in dev.items():
            worse = [f for f in natural_families(v) if v[f] < dev[base].get(f, 0.0)]
            if worse:
                excluded[name] = f"below the base model on {', '.join(worse)} (dev)"
    eligible = [s for s in systems if s.name not in excluded]
    best = max(eligible, key=lambda s: (round(mean[s.name], 12), -systems.index(s)))
    return Choice(best.name, dev, mean, excluded)
