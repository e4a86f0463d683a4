"""Base vs fine-tuned: one evaluation on the golden split, one on a second, differently made query set.

Systems: the baseline dense model, the candidate (fine-tuned folder), and for each extra system:
`bm25` as is, `hybrid` / `hybrid-rrf` once with the baseline and once with the candidate. Comparisons:
candidate vs baseline, candidate vs every other non-hybrid extra, and each hybrid with the candidate
vs the same hybrid with the baseline; Holm runs over all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..fileio import atomic_write_json, atomic_write_text
from ..golden.goldenset import GoldenSet
from .evaluate import PRIMARY, EvaluationReport, evaluate_systems
from .report import write_report
from .systems import (
    BM25System,
    DenseSystem,
    Retriever,
    RRFSystem,
    WeightedFusionSystem,
    tune_alpha,
)


def candidate_label(candidate: str) -> str:
    return f"fine-tuned ({Path(candidate).name})" if Path(candidate).exists() else candidate


@dataclass
class CompareResult:
    primary: EvaluationReport
    second: EvaluationReport | None
    second_name: str | None
    summary: dict


def _systems(
    gs: GoldenSet, baseline: str, candidate: str, extras: Sequence[str], show_progress: bool
) -> tuple[list[Retriever], list[tuple[str, str]]]:
    base = DenseSystem(baseline, gs.corpus, name=baseline, show_progress=show_progress)
    cand = DenseSystem(candidate, gs.corpus, name=candidate_label(candidate), show_progress=show_progress)
    systems: list[Retriever] = [base, cand]
    pairs = [(cand.name, base.name)]
    bm25: BM25System | None = None
    dev = gs.dev_pairs()
    for spec in extras:
        if spec in ("bm25", "hybrid", "hybrid-rrf") and bm25 is None:
            bm25 = BM25System(gs.corpus)
        if spec == "bm25":
            systems.append(bm25)
            pairs.append((cand.name, bm25.name))
        elif spec in ("hybrid", "hybrid-rrf"):
            made = []
            for dense in (base, cand):
                name = f"{spec} ({dense.name})"
                if spec == "hybrid":
                    s = WeightedFusionSystem(dense, bm25, name=name)
                    if dev:
                        alpha, _ = tune_alpha(s, *dev)
                        s.report_extra = {"alpha": alpha, "tuned_on": "dev"}
                else:
                    s = RRFSystem([dense, bm25], name=name)
                made.append(s)
            systems.extend(made)
            pairs.append((made[1].name, made[0].name))
            if bm25 is not None:
                pairs.append((made[1].name, bm25.name))
        else:
            other = DenseSystem(spec, gs.corpus, name=spec, show_progress=show_progress)
            systems.append(other)
            pairs.append((cand.name, other.name))
    return systems, pairs


def _headline(rep: EvaluationReport) -> dict:
    return {
        "queries": len(rep.queries),
        "ndcg@10": {s.name: s.estimates[PRIMARY].to_dict() for s in rep.systems},
        "comparisons": [c.to_dict() for c in rep.comparisons if c.metric == PRIMARY],
    }


def compare(
    gs: GoldenSet,
    *,
    baseline: str,
    candidate: str,
    extras: Sequence[str] = ("bm25", "hybrid"),
    split: str = "test",
    second: GoldenSet | None = None,
    second_name: str | None = None,
    out_dir: str | Path,
    seed: int = 0,
    n_bootstrap: int = 2000,
    n_permutations: int = 10000,
    golden_dir: str | None = None,
    show_progress: bool = False,
    make_plots: bool = True,
) -> CompareResult:
    out = Path(out_dir)
    systems, pairs = _systems(gs, baseline, candidate, extras, show_progress)
    kw = dict(baseline=baseline, seed=seed, n_bootstrap=n_bootstrap, n_permutations=n_permutations, pairs=pairs)
    primary = evaluate_systems(gs, systems, split=split, golden_dir=golden_dir, **kw)
    write_report(primary, out / "primary", make_plots=make_plots)
    second_rep = None
    if second is not None:
        second_split = "test" if "test" in second.splits else "all"
        second_rep = evaluate_systems(second, systems, split=second_split, golden_dir=second_name, **kw)
        write_report(second_rep, out / "second", make_plots=make_plots)
    summary = {
        "baseline": baseline,
        "candidate": candidate_label(candidate),
        "split": split,
        "primary": _headline(primary),
        "second": {"name": second_name, **_headline(second_rep)} if second_rep else None,
    }
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    return CompareResult(primary, second_rep, second_name, summary)


def summary_markdown(summary: dict) -> str:
    lines = [f"# {summary['candidate']} vs {summary['baseline']}", ""]
    for key, title in (("primary", f"Golden set, {summary['split']} split"), ("second", "Second query set")):
        block = summary.get(key)
        if not block:
            continue
        name = f" ({block['name']})" if block.get("name") else ""
        lines += [f"## {title}{name}: {block['queries']} queries", "", "| system | NDCG@10 [95% CI] |", "|---|---|"]
        for sys_name, est in sorted(block["ndcg@10"].items(), key=lambda kv: -kv[1]["mean"]):
            lines.append(f"| {sys_name} | {est['mean']:.3f} [{est['ci_low']:.3f}, {est['ci_high']:.3f}] |")
        lines += ["", "| system | reference | ΔNDCG@10 [95% CI] | p (Holm) |", "|---|---|---|---|"]
        for c in block["comparisons"]:
            d = c["diff"]
            lines.append(
                f"| {c['system']} | {c['baseline']} | {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] | "
                f"{c['p_holm']:.4f} |"
            )
        lines.append("")
    lines.append("Full reports: `primary/report.md`" + (", `second/report.md`" if summary.get("second") else ""))
    return "\n".join(lines) + "\n"
