"""Base vs fine-tuned: one evaluation on the golden split, one on a second, differently made query set.

Systems: the baseline dense model, the candidate (fine-tuned folder), and for each extra system:
`bm25` as is, `hybrid` / `hybrid-rrf` once with the baseline and once with the candidate. Comparisons:
candidate vs baseline, candidate vs every other non-hybrid extra, each hybrid with the candidate vs the
same hybrid with the baseline, and (when `bm25` is one of the systems) each hybrid with the candidate vs
BM25; Holm runs over all of them. The systems are made by `systems.build_systems`; which system plays
which part is in the result's `names`; its `summary` is a typed `summary.ComparisonSummary`. `families`
adds further query families of the split, each compared on its own queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..fileio import atomic_write_json, atomic_write_text
from ..golden.goldenset import GoldenSet
from ..progress import task
from .evaluate import EvaluationReport, evaluate_systems
from .report import write_report
from .summary import (
    GOLDEN_SPLIT,
    INDEPENDENT_SET,
    SPLIT_FAMILY,
    ComparisonSummary,
    FamilyComparison,
    summary_markdown,
)
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
    summary: ComparisonSummary
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
    gs: GoldenSet, baseline: str, candidate: str, extras: Sequence[str], show_progress: bool, fusion: str
) -> tuple[list[System], list[tuple[str, str]], SystemNames]:
    specs, names, pairs, who = comparison_plan(baseline, candidate, extras)
    systems = build_systems(
        specs, gs.corpus, dev=gs.dev_judged(), names=names, show_progress=show_progress, fusion=fusion
    )
    return systems, pairs, who


def compare(
    gs: GoldenSet,
    *,
    baseline: str,
    candidate: str,
    extras: Sequence[str] = ("bm25", "hybrid"),
    split: str = "test",
    second: GoldenSet | None = None,
    second_name: str | None = None,
    families: Sequence[tuple[str, str, GoldenSet]] = (),
    out_dir: str | Path,
    seed: int = 0,
    n_bootstrap: int = 2000,
    n_permutations: int = 10000,
    golden_dir: str | None = None,
    show_progress: bool = False,
    make_plots: bool = True,
    fusion: str = "corpus",
) -> CompareResult:
    """Compare the systems on `split` of `gs`, on `second` (an independent query set, e.g. hand-written
    queries, named `second_name`; its test split, else all of it) and on each of `families` (a family key,
    its name and a golden set holding that family's queries of `split`). Reports go to `out_dir/KEY/`, the
    summary to `out_dir/summary.json` and `summary.md`. `fusion`: the weighted hybrids' (`build_systems`)."""
    out = Path(out_dir)
    with task("embedding", unit="texts", enabled=show_progress):  # one bar for every encode call below
        systems, pairs, names = _systems(gs, baseline, candidate, extras, show_progress, fusion)
        kw = dict(baseline=baseline, seed=seed, n_bootstrap=n_bootstrap, n_permutations=n_permutations, pairs=pairs)
        primary = evaluate_systems(gs, systems, split=split, golden_dir=golden_dir, **kw)
        second_rep = None
        if second is not None:
            second_split = "test" if "test" in second.splits else "all"
            second_rep = evaluate_systems(second, systems, split=second_split, golden_dir=second_name, **kw)
    write_report(primary, out / GOLDEN_SPLIT, make_plots=make_plots)
    if second_rep is not None:
        write_report(second_rep, out / INDEPENDENT_SET, make_plots=make_plots)
    blocks = [FamilyComparison.from_report(GOLDEN_SPLIT, GOLDEN_SPLIT, None, primary)]
    if second_rep is not None:
        blocks.append(FamilyComparison.from_report(INDEPENDENT_SET, INDEPENDENT_SET, second_name, second_rep))
    for family, name, family_gs in families:  # further query families, each on its own test queries: out/FAMILY/
        rep = evaluate_systems(family_gs, systems, split=split, golden_dir=golden_dir, **kw)
        write_report(rep, out / family, make_plots=make_plots)
        blocks.append(FamilyComparison.from_report(family, SPLIT_FAMILY, name, rep))
    summary = ComparisonSummary(names.baseline, names.candidate, split, tuple(blocks))
    atomic_write_json(out / "summary.json", summary.to_json())
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    return CompareResult(primary, second_rep, second_name, summary, names)
