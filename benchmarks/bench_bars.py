"""The natural-language quality bars, measured on a pipeline run's test families with one Holm correction.

    python benchmarks/bench_bars.py --run runs/bundled --template-only OLD_RUN/model

The served system is the run's chosen one through `PromptRetriever.from_run` (what `serve --run` answers),
scored on the natural test queries judged against the whole corpus, the template test split and the
bundled hand-written set, against the base model, BM25 and a template-only fine-tune (the model of a
pipeline run without natural queries, e.g. `prompt-retriever pipeline --out OLD_RUN` at commit 1e03804,
on the same corpus and split). Four comparisons, paired randomization tests, Holm-corrected together:
natural vs base (bar +0.15), natural vs template-only (bar +0.08), hand-written vs base (bar +0.10),
template vs BM25 (not below). Writes `results/bench_bars.json`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import emit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("runs/bundled"), help="pipeline run folder")
    ap.add_argument("--template-only", required=True, help="model folder of a template-only fine-tune")
    args = ap.parse_args()

    from prompt_retriever.evaluation.choose import families
    from prompt_retriever.evaluation.metrics import per_query
    from prompt_retriever.evaluation.stats import bootstrap_ci, holm, paired_randomization_test
    from prompt_retriever.golden.goldenset import GoldenSet, load_query_set
    from prompt_retriever.search.retriever import PromptRetriever, SearchRequest
    from prompt_retriever.search.systems import BM25System, DenseSystem

    gs = GoldenSet.load(args.run / "golden")
    handwritten = load_query_set(None, gs.corpus)
    served = PromptRetriever.from_run(args.run)
    others = {
        "base": DenseSystem("all-MiniLM-L6-v2", gs.corpus),
        "template_only": DenseSystem(args.template_only, gs.corpus),
        "bm25": BM25System(gs.corpus),
    }

    def served_run(queries):
        hits = served.search_requests([SearchRequest(q.text, k=10) for q in queries])
        return {q.id: {h.prompt.id: float(10 - h.rank) for h in hs} for q, hs in zip(queries, hits, strict=True)}

    def values(run, queries, qrels):
        v = per_query(run, {q.id: qrels[q.id] for q in queries}, ["ndcg@10"])["ndcg@10"]
        return [v[q.id] for q in queries]

    sets = {
        "natural_judged_test": (families(gs, "test", judged_only=True)["natural"], gs.qrels),
        "template_test": (families(gs, "test")["template"], gs.qrels),
        "handwritten": (handwritten.split_queries("test"), handwritten.qrels),
    }
    scores = {}
    for name, (queries, qrels) in sets.items():
        pairs = [(q.id, q.text) for q in queries]
        scores[name] = {"served": values(served_run(queries), queries, qrels)}
        for label, system in others.items():
            scores[name][label] = values(system.search(pairs, 10), queries, qrels)
    plan = [
        ("natural_judged_test", "base", 0.15),
        ("natural_judged_test", "template_only", 0.08),
        ("handwritten", "base", 0.10),
        ("template_test", "bm25", None),  # not significantly below
    ]
    pvalues = [paired_randomization_test(scores[s]["served"], scores[s][b]) for s, b, _ in plan]
    comparisons = []
    for (s, b, bar), p, p_holm in zip(plan, pvalues, holm(pvalues), strict=True):
        diff = bootstrap_ci([x - y for x, y in zip(scores[s]["served"], scores[s][b], strict=True)])
        comparisons.append(
            {"set": s, "vs": b, "diff": round(diff.mean, 4), "ci": [round(diff.lo, 4), round(diff.hi, 4)],
             "p": round(p, 4), "p_holm": round(p_holm, 4), "bar": bar,
             "met": (diff.mean >= bar and p_holm < 0.05) if bar is not None else not (diff.mean < 0 and p_holm < 0.05)}
        )  # fmt: skip
    means = {
        s: {k: round(sum(v) / len(v), 4) for k, v in d.items()} | {"queries": len(d["served"])}
        for s, d in scores.items()
    }
    result = {"run": str(args.run), "served": served.describe(), "means": means, "comparisons": comparisons}
    emit("bench_bars", result)


if __name__ == "__main__":
    main()
