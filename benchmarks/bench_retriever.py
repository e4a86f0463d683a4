"""Indexing throughput on the bundled corpus and single-query latency (p50/p99).

python benchmarks/bench_retriever.py [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _common import emit, percentile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    args = ap.parse_args()
    os.environ["PROMPT_RETRIEVER_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-cache-")

    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.encoding.models import load_model
    from prompt_retriever.search.retriever import PromptRetriever

    prompts = load_corpus()
    load_model(args.model)  # load time is not indexing time
    r = PromptRetriever(args.model, use_cache=False)
    r.encoder.encode_queries(["warm-up"])
    t0 = time.perf_counter()
    r.index(prompts)
    index_s = time.perf_counter() - t0

    queries = [f"{p.theme.lower()} {p.genre.lower()} prompt about {p.title.lower()}" for p in prompts]
    queries = (queries * (args.queries // len(queries) + 1))[: args.queries]
    lat = []
    for q in queries:
        t = time.perf_counter()
        r.search(q, k=10)
        lat.append((time.perf_counter() - t) * 1000)
    emit(
        "bench_retriever",
        {
            "model": r.fingerprint,
            "prompts": len(prompts),
            "index_seconds": round(index_s, 2),
            "prompts_per_s": round(len(prompts) / index_s, 1),
            "queries": len(queries),
            "query_ms_p50": round(percentile(lat, 50), 2),
            "query_ms_p99": round(percentile(lat, 99), 2),
        },
    )


if __name__ == "__main__":
    main()
