"""Candidate fusion against full-corpus fusion, per query family and depth: quality and fallbacks.

    python benchmarks/bench_candidates.py --retune --depths 25 50 100 200   # base model, generated golden set
    python benchmarks/bench_candidates.py --run runs/bundled                # also the run's fine-tuned model

The weighted hybrids (`hybrid`, `hybrid-adaptive`) fuse the union of each side's top `depth` with the
whole corpus's min-max bounds (`search.candidates`): every candidate's fused score is its full-corpus one,
and a query whose best 10 the threshold bound cannot settle (or that ties at the cut) is fused over the
whole corpus instead. So NDCG@10 must equal full-corpus fusion's (the old formula, computed here directly)
on every family; what depth changes is how many queries fall back, which is what an engine pays (it would
have to ask for more candidates). `one_round` is NDCG@10 when no query falls back: each query's union's
best 10 without the proof, what an engine serves in one round at that depth (`EngineSearch(max_depth=
depth)`), and `one_round_delta` its cost against full-corpus fusion. `identical` counts queries whose
run differs from the full-corpus one in any prompt, order or score (must be 0). Weights: tuned on dev
with full-corpus fusion (`fixed`), or (`--retune`) tuned on dev at each depth as a pipeline does
(`tune_alpha` fuses at the system's depth).

The golden set is generated as the tests do (heuristic template queries plus the bundled natural
queries, split by prompt); a query family is a query kind (every template kind, `natural`,
`natural_judged`). The default depth is chosen on dev only: the smallest depth at which at most
`--max-fallback` of the dev queries fall back for want of depth, for both hybrids, with every dev delta 0
and every dev run identical; test numbers are reported after. For want of depth: beyond the queries that
fall back at the deepest depth measured too, which no depth short of the whole corpus settles (an alpha-0
bucket, pure BM25, with fewer than 10 matches: its 10th place is one of many prompts scoring 0). Writes
`results/bench_candidates[_retuned].json`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit

DEPTHS = (25, 50, 100, 200, 400)


def golden_set(path: Path | None):
    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.golden.goldenset import GoldenSet
    from prompt_retriever.golden.heuristic import generate_heuristic
    from prompt_retriever.golden.natural import add_natural_queries, bundled_natural_path, read_natural_queries
    from prompt_retriever.golden.splits import split_by_prompt

    if path is not None:
        return GoldenSet.load(path)
    prompts = load_corpus()
    return split_by_prompt(
        add_natural_queries(generate_heuristic(prompts), read_natural_queries(bundled_natural_path()))
    )


def by_family(gs, split: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for q in gs.split_queries(split):
        out.setdefault(q.kind, []).append(q)
    return dict(sorted(out.items()))


def fallback_reasons(fusion, fallen: list[str], weights: dict, k: int) -> dict[str, int]:
    """Why queries fell back: the bound (an outside prompt could reach the best k) or a tie at the cut."""
    bound = 0
    for q in fallen:
        c, a = fusion.candidates[q], weights[q]
        fused = np.sort(c.fused(a))[::-1]
        thr = c.threshold(a)
        bound += thr is not None and (len(fused) < k or not fused[k - 1] > thr)
    return {"bound": bound, "tie_at_cut": len(fallen) - bound}


def measure(model: str, gs, depths: tuple[int, ...], retune: bool = False) -> dict:
    """NDCG@10 per split, family, hybrid and depth ("full": full-corpus fusion), its delta, the queries
    that fell back and the queries whose run is not identical to full-corpus fusion's."""
    from prompt_retriever.evaluation.metrics import evaluate
    from prompt_retriever.evaluation.systems import build_systems
    from prompt_retriever.search.candidates import ExactFusion, query_alphas
    from prompt_retriever.search.fusion import normalize
    from prompt_retriever.search.runs import run_from_scores

    n = len(gs.corpus)
    specs = [f"hybrid:{model}", f"hybrid-adaptive:{model}"]
    hybrid, adaptive = build_systems(specs, gs.corpus, dev=gs.dev_judged(), depth=n)
    dense, bm25 = hybrid.dense, hybrid.bm25
    weights = {n: (hybrid.alpha, adaptive.alphas)}
    for depth in depths:
        if retune:
            h, a = build_systems(specs, gs.corpus, dev=gs.dev_judged(), depth=depth)
            weights[depth] = (h.alpha, a.alphas)
        else:
            weights[depth] = weights[n]
    out: dict = {
        "weights": {
            "full" if d == n else str(d): {"hybrid": w[0], "hybrid-adaptive": list(w[1])} for d, w in weights.items()
        },
        "splits": {},
    }
    for split in ("dev", "test"):
        table: dict = {}
        for fam, queries in by_family(gs, split).items():
            qids, texts = [q.id for q in queries], [q.text for q in queries]
            d, b = dense.scores(texts), bm25.scores(texts)
            nd, nb = normalize(d), normalize(b)
            qrels = {q.id: gs.qrels[q.id] for q in queries}
            row: dict = {"queries": len(queries)}
            for kind in ("hybrid", "hybrid-adaptive"):
                scores, fell, reasons, differ, one_round = {}, {}, {}, {}, {}
                for depth in (n, *depths):
                    alpha, alphas = weights[depth]
                    w = query_alphas(kind, qids, alpha, texts=texts, alphas=alphas, bounds=adaptive.bounds)
                    if kind == "hybrid":
                        fused = alpha * nd + (1 - alpha) * nb  # fusion.weighted_sum
                    else:
                        a = np.array([w[q] for q in qids], dtype=np.float32)[:, None]
                        fused = a * nd + (1 - a) * nb
                    full = run_from_scores(qids, dense.ids, fused, 10)  # the old formula, whole corpus
                    key = "full" if depth == n else str(depth)
                    fusion = ExactFusion(qids, dense.ids, d, b, depth)  # depth n: every prompt a candidate
                    run, fallen = fusion.fuse(w, 10)
                    fell[key], reasons[key] = len(fallen), fallback_reasons(fusion, fallen, w, 10)
                    differ[key] = sum(list(run[q].items()) != list(full[q].items()) for q in qids)
                    scores[key] = evaluate(full if depth == n else run, qrels, ["ndcg@10"])["ndcg@10"]
                    if depth != n:  # the union's best 10 without the proof: what one round over an engine serves
                        unproven = {q: fusion.candidates[q].fuse(w[q], 10, proven=False) for q in qids}
                        one_round[key] = evaluate(unproven, qrels, ["ndcg@10"])["ndcg@10"]
                row[kind] = {k: round(v, 5) for k, v in scores.items()} | {
                    "delta": {k: round(v - scores["full"], 5) for k, v in scores.items() if k != "full"},
                    "fallbacks": fell,
                    "fallback_reasons": reasons,
                    "not_identical": differ,
                    "one_round": {k: round(v, 5) for k, v in one_round.items()},
                    "one_round_delta": {k: round(v - scores["full"], 5) for k, v in one_round.items()},
                }
            table[fam] = row
        out["splits"][split] = table
    return out


def totals(result: dict, split: str, depth: int) -> dict:
    """Queries, fallbacks (both hybrids) and the worst delta and non-identical runs at `depth`."""
    rows = result["splits"][split].values()
    kinds = ("hybrid", "hybrid-adaptive")
    return {
        "queries": sum(r["queries"] for r in rows),
        "fallbacks": {s: sum(r[s]["fallbacks"][str(depth)] for r in rows) for s in kinds},
        "fallback_reasons": {
            s: {why: sum(r[s]["fallback_reasons"][str(depth)][why] for r in rows) for why in ("bound", "tie_at_cut")}
            for s in kinds
        },
        # with every prompt a candidate only ties at the cut fall back: no depth avoids these
        "fallbacks_at_full_depth": {s: sum(r[s]["fallbacks"]["full"] for r in rows) for s in kinds},
        "worst_delta": min(r[s]["delta"][str(depth)] for r in rows for s in kinds),
        "not_identical": sum(r[s]["not_identical"][str(depth)] for r in rows for s in kinds),
        # one round without the proof (each query's union's best 10): its worst family and hybrid
        "one_round_worst_delta": min(r[s]["one_round_delta"][str(depth)] for r in rows for s in kinds),
    }


def choose_depth(result: dict, depths: tuple[int, ...], max_fallback: float) -> int | None:
    """The smallest depth at which at most `max_fallback` of the dev queries fall back for want of depth,
    for each hybrid, every dev delta 0 and every dev run identical to full-corpus fusion's. For want of
    depth: beyond those that fall back at the deepest depth measured too (no depth short of the whole
    corpus settles those, e.g. a pure-BM25 bucket's query with fewer than 10 matches, whose 10th place is
    one of many prompts scoring 0)."""
    deepest = totals(result, "dev", max(depths))["fallbacks"]
    for depth in depths:
        t = totals(result, "dev", depth)
        extra = [t["fallbacks"][s] - deepest[s] for s in t["fallbacks"]]
        if t["worst_delta"] == 0 and t["not_identical"] == 0 and max(extra) <= max_fallback * t["queries"]:
            return depth
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS))
    ap.add_argument("--max-fallback", type=float, default=0.01, help="share of dev queries allowed to fall back")
    ap.add_argument("--run", type=Path, help="a pipeline run: also measure its model on its own golden set")
    ap.add_argument("--retune", action="store_true", help="tune the weights on dev at each depth (default: fixed)")
    args = ap.parse_args()
    os.environ.setdefault("PROMPT_RETRIEVER_CACHE_DIR", tempfile.mkdtemp(prefix="bench-cache-"))
    depths = tuple(sorted(args.depths))

    t0 = time.perf_counter()
    models: dict = {}
    gs = golden_set(None)
    base = measure("all-MiniLM-L6-v2", gs, depths, args.retune)
    base["golden"] = "generated (heuristic + bundled natural queries, split_by_prompt defaults)"
    models["all-MiniLM-L6-v2"] = base
    if args.run is not None:
        from prompt_retriever.search.retriever import PromptRetriever

        try:
            PromptRetriever.from_run(args.run)  # refuses a stale run (corpus or model changed since)
        except Exception as e:  # noqa: BLE001 - reported, not raised: the base model's numbers stand
            models["fine-tuned"] = {"skipped": f"{type(e).__name__}: {e}"[:300]}
        else:
            tuned = measure(str(args.run / "model"), golden_set(args.run / "golden"), depths, args.retune)
            models["fine-tuned"] = tuned | {"golden": str(args.run / "golden"), "model": str(args.run / "model")}
    chosen = {name: choose_depth(m, depths, args.max_fallback) for name, m in models.items() if "splits" in m}
    emit(
        "bench_candidates" + ("_retuned" if args.retune else ""),
        {
            "weights_mode": "retuned on dev at each depth" if args.retune else "fixed (tuned on dev, full corpus)",
            "prompts": len(gs.corpus),
            "depths": list(depths),
            "max_fallback_dev": args.max_fallback,
            "chosen_depth_on_dev": chosen,
            "totals": {
                name: {s: {d: totals(m, s, d) for d in depths} for s in ("dev", "test")}
                for name, m in models.items()
                if "splits" in m
            },
            "models": models,
            "seconds": round(time.perf_counter() - t0, 1),
            "note": "delta = candidate fusion at depth minus full-corpus fusion (NDCG@10); fallbacks = queries "
            "fused over the whole corpus because the candidates could not prove their best 10",
        },
    )


if __name__ == "__main__":
    main()
