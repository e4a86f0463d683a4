"""Base vs fine-tuned: one evaluation on the golden split, one on a second, differently made query set.

Systems: the baseline dense model, the candidate (fine-tuned folder), and for each extra system:
`bm25` as is, `hybrid` / `hybrid-rrf` once with the baseline and once with the candidate. Comparisons:
candidate vs baseline, candidate vs every other non-hybrid extra, each hybrid with the candidate vs the
same hybrid with the baseline, and (when `bm25` is one of the systems) each hybrid with the candidate vs
BM25; Holm runs over all of them. The systems are made by `systems.build_systems`; which system plays
which part is in the result's `names`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..fileio import atomic_write_json, atomic_write_text
from ..golden.goldenset import GoldenSet
from ..progress import task
from .evaluate import PRIMARY, EvaluationReport, evaluate_systems
from .report import write_report
from .systems import System, build_systems

HYBRIDS = ("hybrid", "hybrid-rrf", "hybrid-adaptive")


def candidate_label(candidate: str) -> str:
    return f"fine-tuned ({Path(candidate).name})" if Path(candidate).exists() else candidate


@dataclass(frozen=True)
class SystemNames:
    """The names of the systems of a comparison, by the part they play."""

    baseline: str
    candidate: str
    others: list[str] = field(default_factory=list)  # bm25 and extra models, each compared with the candidate
    hybrids: dict[str, tuple[str, str]] = field(default_factory=dict)  # spec -> (with baseline, with candidate)


@dataclass
class CompareResult:
    primary: EvaluationReport
    second: EvaluationReport | None
    second_name: str | None
    summary: dict
    names: SystemNames


def comparison_plan(
    baseline: str, candidate: str, extras: Sequence[str]
) -> tuple[list[str], dict[str, str], list[tuple[str, str]], SystemNames]:
    """The `build_systems` specs and names of a comparison, its (system, reference) pairs, and who is who.

    An extra `hybrid` / `hybrid-rrf` is built twice, as `SPEC:baseline` and `SPEC:candidate`, named
    "SPEC (baseline name)" and "SPEC (candidate name)"; any other extra but `bm25` is a dense model."""
    cand = candidate_label(candidate)
    specs = [baseline, candidate]
    names = {baseline: baseline, candidate: cand}
    pairs = [(cand, baseline)]
    others: list[str] = []
    hybrids: dict[str, tuple[str, str]] = {}
    for spec in extras:
        if spec in HYBRIDS:
            with_base, with_cand = f"{spec} ({baseline})", f"{spec} ({cand})"
            specs += [f"{spec}:{baseline}", f"{spec}:{candidate}"]
            names |= {f"{spec}:{baseline}": with_base, f"{spec}:{candidate}": with_cand}
            hybrids[spec] = (with_base, with_cand)
            pairs.append((with_cand, with_base))
            if "bm25" in extras:  # only when BM25 is one of the systems
                pairs.append((with_cand, "bm25"))
        else:
            specs.append(spec)
            others.append(names.get(spec, spec))
            pairs.append((cand, others[-1]))
    return specs, names, pairs, SystemNames(baseline, cand, others, hybrids)


def _systems(
    gs: GoldenSet, baseline: str, candidate: str, extras: Sequence[str], show_progress: bool
) -> tuple[list[System], list[tuple[str, str]], SystemNames]:
    specs, names, pairs, who = comparison_plan(baseline, candidate, extras)
    systems = build_systems(specs, gs.corpus, dev=gs.dev_pairs(), names=names, show_progress=show_progress)
    return systems, pairs, who


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
    more: Sequence[tuple[str, str, GoldenSet]] = (),
    out_dir: str | Path,
    seed: int = 0,
    n_bootstrap: int = 2000,
    n_permutations: int = 10000,
    golden_dir: str | None = None,
    show_progress: bool = False,
    make_plots: bool = True,
) -> CompareResult:
    out = Path(out_dir)
    with task("embedding", unit="texts", enabled=show_progress):  # one bar for every encode call below
        systems, pairs, names = _systems(gs, baseline, candidate, extras, show_progress)
        kw = dict(baseline=baseline, seed=seed, n_bootstrap=n_bootstrap, n_permutations=n_permutations, pairs=pairs)
        primary = evaluate_systems(gs, systems, split=split, golden_dir=golden_dir, **kw)
        second_rep = None
        if second is not None:
            second_split = "test" if "test" in second.splits else "all"
            second_rep = evaluate_systems(second, systems, split=second_split, golden_dir=second_name, **kw)
    write_report(primary, out / "primary", make_plots=make_plots)
    if second_rep is not None:
        write_report(second_rep, out / "second", make_plots=make_plots)
    summary = {
        "baseline": names.baseline,
        "candidate": names.candidate,
        "split": split,
        "primary": _headline(primary),
        "second": {"name": second_name, **_headline(second_rep)} if second_rep else None,
    }
    for key, name, other in more:  # more query families, each on its own test queries: out/KEY/
        rep = evaluate_systems(other, systems, split=split, golden_dir=golden_dir, **kw)
        write_report(rep, out / key, make_plots=make_plots)
        summary.setdefault("more", {})[key] = {"name": name, **_headline(rep)}
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    return CompareResult(primary, second_rep, second_name, summary, names)


def summary_markdown(summary: dict, *, title: str = "#", reports: str = "") -> str:
    """The summary as Markdown. `title`: the title's heading marks; `reports`: the folder of compare's
    output as the reader should see it (a prefix of the report paths, e.g. "reports/compare/")."""
    lines = [
        f"{title} {summary['candidate']} vs {summary['baseline']}",
        "",
        "NDCG@10 of every system with a 95% bootstrap CI, then paired differences (bootstrap CI, paired "
        "randomization test, Holm-corrected over all comparisons).",
        "",
    ]
    sub = title + "#"
    blocks = [("primary", f"Golden set, {summary['split']} split"), ("second", "Second query set")]
    blocks += [(key, "Query family") for key in summary.get("more") or {}]
    for key, title in blocks:
        block = summary.get(key) or (summary.get("more") or {}).get(key)
        if not block:
            continue
        name = f" ({block['name']})" if block.get("name") else ""
        lines += [f"{sub} {title}{name}: {block['queries']} queries", "", "| system | NDCG@10 [95% CI] |", "|---|---|"]
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
    second = f", `{reports}second/report.md`" if summary.get("second") else ""
    more = "".join(f", `{reports}{key}/report.md`" for key in summary.get("more") or {})
    lines.append(f"Full reports: `{reports}primary/report.md`" + second + more)
    return "\n".join(lines) + "\n"
