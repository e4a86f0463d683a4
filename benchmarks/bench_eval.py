"""Queries/s of each retrieval system over the bundled corpus, and the time to evaluate 1,000 queries.

python benchmarks/bench_eval.py [--queries 1000] [--with-mpnet]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _common import emit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--with-mpnet", action="store_true", help="include all-mpnet-base-v2 (needs its 5 packages)")
    args = ap.parse_args()
    os.environ.setdefault("PROMPT_RETRIEVER_CACHE_DIR", tempfile.mkdtemp(prefix="bench-cache-"))

    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.evaluation.evaluate import evaluate_systems
    from prompt_retriever.evaluation.systems import build_systems
    from prompt_retriever.golden.goldenset import GoldenSet
    from prompt_retriever.golden.heuristic import generate_heuristic
    from prompt_retriever.golden.splits import split_by_prompt

    prompts = load_corpus()
    gs = split_by_prompt(generate_heuristic(prompts))
    queries = gs.queries[: args.queries]
    bench = GoldenSet(gs.corpus, queries, {q.id: gs.qrels[q.id] for q in queries}, {"test": [q.id for q in queries]})
    specs = ["bm25", "all-MiniLM-L6-v2", "hybrid", "hybrid-rrf"] + (["mpnet"] if args.with_mpnet else [])
    t0 = time.perf_counter()
    systems = build_systems(specs, prompts, dev=gs.dev_judged())
    build_s = time.perf_counter() - t0
    pairs = [(q.id, q.text) for q in queries]
    qps = {}
    for s in systems:
        s.search(pairs[:8], 10)  # warm-up
        t = time.perf_counter()
        s.search(pairs, 100)
        qps[s.name] = round(len(pairs) / (time.perf_counter() - t), 1)
    t = time.perf_counter()
    evaluate_systems(bench, systems[:1], split="test")
    eval_s = time.perf_counter() - t
    emit(
        "bench_eval",
        {
            "prompts": len(prompts),
            "queries": len(queries),
            "queries_per_second": qps,
            "ratio_to_bm25": {k: round(v / qps["bm25"], 3) for k, v in qps.items()},
            "build_seconds_all_systems": round(build_s, 1),
            "evaluate_1000_queries_seconds_bm25": round(eval_s, 2),
            "note": "evaluate time = search + 25 metrics + bootstrap CIs (2000 resamples) for one system",
        },
    )


if __name__ == "__main__":
    main()
