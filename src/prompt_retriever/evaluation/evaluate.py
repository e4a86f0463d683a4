"""Evaluate retrieval systems on a golden set split: metrics, CIs, breakdowns, paired comparisons."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..golden.goldenset import GoldenSet, Query
from ..progress import task
from .metrics import DEFAULT_KS, DEFAULT_METRICS, metric_names, per_query
from .stats import Comparison, Estimate, bootstrap_ci, holm, paired_randomization_test
from .systems import Retriever, Run, System

PRIMARY = "ndcg@10"
COMPARE_METRICS = ("ndcg@10", "mrr@10", "recall@10")
RECALL_CURVE_KS = (1, 2, 3, 5, 10, 20, 50, 100)
MULTI_GENRE = "(several genres)"


def query_genre(q: Query, gs: GoldenSet) -> str:
    """The genre a query asks about: its source prompt's, or the one genre all its relevant prompts share."""
    prompts = gs.prompt_by_id
    if q.source_id and q.kind not in ("theme",):
        return prompts[q.source_id].genre
    genres = {prompts[pid].genre for pid, g in gs.qrels[q.id].items() if g > 0}
    return genres.pop() if len(genres) == 1 else MULTI_GENRE


@dataclass
class SystemResult:
    name: str
    fingerprint: str | None
    run: Run
    per_query: dict[str, dict[str, float]]  # metric -> query id -> value
    estimates: dict[str, Estimate]
    by_kind: dict[str, dict[str, dict]]  # kind -> metric -> {mean, ci_low, ci_high, n}
    by_genre: dict[str, dict[str, dict]]
    recall_curve: dict[int, float]
    search_seconds: float
    queries_per_second: float
    extra: dict = field(default_factory=dict)


@dataclass
class EvaluationReport:
    golden_dir: str | None
    split: str
    metrics: list[str]
    systems: list[SystemResult]
    baseline: str
    comparisons: list[Comparison]
    queries: list[Query]
    golden_manifest: dict
    seed: int
    n_bootstrap: int
    n_permutations: int
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)

    def system(self, name: str) -> SystemResult:
        return next(s for s in self.systems if s.name == name)

    @property
    def best(self) -> SystemResult:
        return max(self.systems, key=lambda s: s.estimates[PRIMARY].mean)


def _grouped(values: dict[str, float], groups: dict[str, str], seed: int, n_boot: int) -> dict[str, dict]:
    by: dict[str, list[float]] = defaultdict(list)
    for qid, v in values.items():
        by[groups[qid]].append(v)
    out = {}
    for g in sorted(by):
        est = bootstrap_ci(by[g], n_resamples=n_boot, seed=seed)
        out[g] = {**est.to_dict(), "n": len(by[g])}
    return out


def _breakdown(
    pq: dict[str, dict[str, float]], metrics: Sequence[str], groups: dict[str, str], seed: int, n_boot: int
) -> dict[str, dict[str, dict]]:
    """group -> metric -> {mean, ci_low, ci_high, n}."""
    per_metric = {m: _grouped(pq[m], groups, seed, n_boot) for m in metrics}
    return {g: {m: per_metric[m][g] for m in metrics} for g in sorted(set(groups.values()))}


def evaluate_systems(
    gs: GoldenSet,
    systems: Sequence[Retriever],
    *,
    split: str = "test",
    baseline: str | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ks: Sequence[int] = DEFAULT_KS,
    compare_metrics: Sequence[str] = COMPARE_METRICS,
    depth: int = 100,
    seed: int = 0,
    n_bootstrap: int = 2000,
    n_permutations: int = 10000,
    golden_dir: str | None = None,
    progress: bool = False,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> EvaluationReport:
    """Evaluate `systems` on a split. `pairs` lists (system, reference) comparisons; default: every system
    against `baseline`. Holm's correction runs over all pairs x `compare_metrics`. Any `Retriever` works; a
    `systems.System` also has its `fingerprint` and `report_extra` recorded."""
    if not systems:
        raise InputError("no systems to evaluate")
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise InputError(f"system names must be unique: {names}")
    baseline = baseline or names[0]
    if baseline not in names:
        raise InputError(f"baseline {baseline!r} is not one of the systems {names}")
    queries = gs.split_queries(split)
    if not queries:
        raise InputError(f"split {split!r} has no queries")
    qrels = {q.id: gs.qrels[q.id] for q in queries}
    mnames = metric_names(metrics, ks)
    for m in compare_metrics:
        if m not in mnames:
            mnames.append(m)
    curve_names = [f"recall@{k}" for k in RECALL_CURVE_KS]
    kinds = {q.id: q.kind for q in queries}
    genres = {q.id: query_genre(q, gs) for q in queries}
    query_pairs = [(q.id, q.text) for q in queries]

    results: list[SystemResult] = []
    with task("evaluating", unit="systems", total=len(systems), enabled=progress) as bar:
        for system in systems:
            t0 = time.perf_counter()
            run = system.search(query_pairs, max(depth, max(ks)))
            secs = time.perf_counter() - t0
            pq = per_query(run, qrels, mnames + [c for c in curve_names if c not in mnames])
            estimates = {m: bootstrap_ci(list(pq[m].values()), n_resamples=n_bootstrap, seed=seed) for m in mnames}
            breakdown_metrics = [m for m in (PRIMARY, "recall@10", "mrr@10") if m in pq]
            results.append(
                SystemResult(
                    name=system.name,
                    fingerprint=system.fingerprint if isinstance(system, System) else None,
                    run=run,
                    per_query={m: pq[m] for m in mnames},
                    estimates=estimates,
                    by_kind=_breakdown(pq, breakdown_metrics, kinds, seed, n_bootstrap),
                    by_genre=_breakdown(pq, breakdown_metrics, genres, seed, n_bootstrap),
                    recall_curve={k: float(np.mean(list(pq[f"recall@{k}"].values()))) for k in RECALL_CURVE_KS},
                    search_seconds=secs,
                    queries_per_second=len(query_pairs) / secs if secs > 0 else float("inf"),
                    extra=dict(system.report_extra) if isinstance(system, System) else {},
                )
            )
            bar.advance()

    by_name = {r.name: r for r in results}
    pairs = list(pairs) if pairs is not None else [(n, baseline) for n in names if n != baseline]
    for a_name, b_name in pairs:
        if a_name not in by_name or b_name not in by_name:
            raise InputError(f"comparison {a_name} vs {b_name} names a system not evaluated")
    raw: list[tuple[str, str, str, Estimate, float]] = []
    qids = [q.id for q in queries]
    for a_name, b_name in pairs:
        for m in compare_metrics:
            a = [by_name[a_name].per_query[m][q] for q in qids]
            b = [by_name[b_name].per_query[m][q] for q in qids]
            diff = bootstrap_ci(np.subtract(a, b).tolist(), n_resamples=n_bootstrap, seed=seed)
            p = paired_randomization_test(a, b, n_resamples=n_permutations, seed=seed)
            raw.append((a_name, b_name, m, diff, p))
    adjusted = holm([x[4] for x in raw]) if raw else []
    comparisons = [
        Comparison(metric=m, system=a_name, baseline=b_name, diff=d, p_value=p, p_holm=ph)
        for (a_name, b_name, m, d, p), ph in zip(raw, adjusted, strict=True)
    ]
    return EvaluationReport(
        golden_dir=golden_dir,
        split=split,
        metrics=mnames,
        systems=results,
        baseline=baseline,
        comparisons=comparisons,
        queries=queries,
        golden_manifest=gs.manifest,
        seed=seed,
        n_bootstrap=n_bootstrap,
        n_permutations=n_permutations,
        qrels=qrels,
        titles={p.id: p.title for p in gs.corpus},
    )
