"""The summary of a comparison, typed: per query family, every system's NDCG@10 and the paired deltas.

`compare` makes a `ComparisonSummary`; the comparison's `summary.json` (and the pipeline's stage record) is
its JSON form, `to_json` / `from_json`. That file format keeps its keys: `primary` (the golden set's split),
`second` (an independent query set, or null) and `more` (further query families of the split, by family);
the same names are the folders of the per-family reports. In Python the blocks are one tuple in report
order, each saying where its queries come from (`source`).

Beside it: `summary_markdown` (summary.md, and the comparison section of a pipeline's REPORT.md) and
`headline_numbers` (the lines a command prints, and the numbers a run's summary.json keeps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .evaluate import PRIMARY, EvaluationReport
from .stats import Comparison, Estimate

# Where a block's queries come from; the first two are also its key in the JSON form and its report folder.
GOLDEN_SPLIT = "primary"  # the golden set's split (its template family when other families are measured)
INDEPENDENT_SET = "second"  # a query set made independently of the golden set (e.g. hand-written queries)
SPLIT_FAMILY = "family"  # one more query family of the golden split (e.g. natural-language queries)
FAMILIES_KEY = "more"  # the JSON key holding the SPLIT_FAMILY blocks, by family


@dataclass(frozen=True)
class FamilyComparison:
    """One block of a comparison: the systems' NDCG@10 on one query family, and the paired deltas."""

    key: str  # its report folder (`primary`, `second`, or the family, e.g. `natural`)
    source: str  # GOLDEN_SPLIT, INDEPENDENT_SET or SPLIT_FAMILY
    name: str | None  # how the reports name its queries (None: the golden split, named by the report)
    queries: int
    ndcg: Mapping[str, Estimate]  # system name -> NDCG@10 with its 95% bootstrap CI
    comparisons: tuple[Comparison, ...]  # NDCG@10 deltas (system vs reference), Holm-corrected

    @classmethod
    def from_report(cls, key: str, source: str, name: str | None, rep: EvaluationReport) -> FamilyComparison:
        return cls(
            key=key,
            source=source,
            name=name,
            queries=len(rep.queries),
            ndcg={s.name: s.estimates[PRIMARY] for s in rep.systems},
            comparisons=tuple(c for c in rep.comparisons if c.metric == PRIMARY),
        )

    def comparison(self, system: str, baseline: str) -> Comparison | None:
        """The delta of `system` vs `baseline` in this block (None: not compared)."""
        return next((c for c in self.comparisons if c.system == system and c.baseline == baseline), None)

    def ranked(self) -> list[tuple[str, Estimate]]:
        """The systems by NDCG@10, best first (ties in the order they were evaluated)."""
        return sorted(self.ndcg.items(), key=lambda kv: -kv[1].mean)

    def to_json(self) -> dict[str, Any]:
        return {
            **({} if self.source == GOLDEN_SPLIT else {"name": self.name}),
            "queries": self.queries,
            "ndcg@10": {name: est.to_dict() for name, est in self.ndcg.items()},
            "comparisons": [c.to_dict() for c in self.comparisons],
        }

    @classmethod
    def from_json(cls, key: str, source: str, data: Mapping[str, Any]) -> FamilyComparison:
        return cls(
            key=key,
            source=source,
            name=data.get("name"),
            queries=data["queries"],
            ndcg={name: _estimate(est) for name, est in data["ndcg@10"].items()},
            comparisons=tuple(_comparison(c) for c in data["comparisons"]),
        )


@dataclass(frozen=True)
class ComparisonSummary:
    """A comparison's result: who is compared, on which split, and one block per query family in report
    order (the golden split first, then the independent set, then the split's further families)."""

    baseline: str  # the base model's system name
    candidate: str  # the candidate's (fine-tuned model's) system name
    split: str  # the golden set's split compared on
    families: tuple[FamilyComparison, ...]

    @property
    def golden_split(self) -> FamilyComparison:
        return next(b for b in self.families if b.source == GOLDEN_SPLIT)

    @property
    def independent_set(self) -> FamilyComparison | None:
        return next((b for b in self.families if b.source == INDEPENDENT_SET), None)

    @property
    def split_families(self) -> tuple[FamilyComparison, ...]:
        return tuple(b for b in self.families if b.source == SPLIT_FAMILY)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (summary.json, the pipeline's compare record); `from_json` reads it back equal."""
        independent = self.independent_set
        out: dict[str, Any] = {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "split": self.split,
            GOLDEN_SPLIT: self.golden_split.to_json(),
            INDEPENDENT_SET: independent.to_json() if independent else None,
        }
        if more := self.split_families:
            out[FAMILIES_KEY] = {b.key: b.to_json() for b in more}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComparisonSummary:
        blocks = [FamilyComparison.from_json(GOLDEN_SPLIT, GOLDEN_SPLIT, data[GOLDEN_SPLIT])]
        if data.get(INDEPENDENT_SET):
            blocks.append(FamilyComparison.from_json(INDEPENDENT_SET, INDEPENDENT_SET, data[INDEPENDENT_SET]))
        for key, block in (data.get(FAMILIES_KEY) or {}).items():
            blocks.append(FamilyComparison.from_json(key, SPLIT_FAMILY, block))
        return cls(data["baseline"], data["candidate"], data["split"], tuple(blocks))


def _estimate(data: Mapping[str, float]) -> Estimate:
    return Estimate(data["mean"], data["ci_low"], data["ci_high"])


def _comparison(data: Mapping[str, Any]) -> Comparison:
    return Comparison(
        metric=data["metric"],
        system=data["system"],
        baseline=data["baseline"],
        diff=_estimate(data["diff"]),
        p_value=data["p_value"],
        p_holm=data["p_holm"],
    )


def delta_text(c: Comparison) -> str:
    """A delta as the reports write it: mean [CI], Holm p."""
    d = c.diff
    return f"{d.mean:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}], Holm p = {c.p_holm:.4f}"


def headline_numbers(summary: ComparisonSummary) -> dict[str, Any]:
    """The comparison in a few lines (`lines`) and each block's NDCG@10 by system, rounded (by block key)."""
    lines: list[str] = []
    out: dict[str, Any] = {"lines": lines}
    for block in summary.families:
        label = "test split" if block.source == GOLDEN_SPLIT else block.name or "second set"
        out[block.key] = {"ndcg@10": {name: round(est.mean, 4) for name, est in block.ndcg.items()}}
        lines.append(f"{label}: NDCG@10 " + ", ".join(f"{name} {est.mean:.3f}" for name, est in block.ranked()))
        for c in block.comparisons:
            d = c.diff
            lines.append(
                f"  {c.system} vs {c.baseline}: {d.mean:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}], Holm p={c.p_holm:.4f}"
            )
    return out


_TITLES = {GOLDEN_SPLIT: "Golden set, {split} split", INDEPENDENT_SET: "Second query set", SPLIT_FAMILY: "Query family"}


def summary_markdown(summary: ComparisonSummary, *, title: str = "#", reports: str = "") -> str:
    """The summary as Markdown. `title`: the title's heading marks; `reports`: the folder of compare's
    output as the reader should see it (a prefix of the report paths, e.g. "reports/compare/")."""
    lines = [
        f"{title} {summary.candidate} vs {summary.baseline}",
        "",
        "NDCG@10 of every system with a 95% bootstrap CI, then paired differences (bootstrap CI, paired "
        "randomization test, Holm-corrected over all comparisons).",
        "",
    ]
    sub = title + "#"
    for block in summary.families:
        heading = _TITLES[block.source].format(split=summary.split)
        name = f" ({block.name})" if block.name else ""
        lines += [f"{sub} {heading}{name}: {block.queries} queries", "", "| system | NDCG@10 [95% CI] |", "|---|---|"]
        for sys_name, est in block.ranked():
            lines.append(f"| {sys_name} | {est.mean:.3f} [{est.lo:.3f}, {est.hi:.3f}] |")
        lines += ["", "| system | reference | ΔNDCG@10 [95% CI] | p (Holm) |", "|---|---|---|---|"]
        for c in block.comparisons:
            d = c.diff
            lines.append(f"| {c.system} | {c.baseline} | {d.mean:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}] | {c.p_holm:.4f} |")
        lines.append("")
    lines.append("Full reports: " + ", ".join(f"`{reports}{block.key}/report.md`" for block in summary.families))
    return "\n".join(lines) + "\n"
