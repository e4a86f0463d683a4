"""Search latency (p50/p99) and QPS of the exact numpy store and Qdrant (embedded) at 10k, 100k and 1M
synthetic 384-d prompt vectors, in one run, with and without a genre filter.

    python benchmarks/bench_search.py [--sizes 10000,100000,1000000] [--qdrant-max 100000] [--queries 200]

Qdrant's embedded (local) mode is a pure-Python brute-force store meant for tests and small data; a
Qdrant server adds HNSW indexing, quantisation and sharding, which is what the cluster path is for.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _common import emit, percentile


def unit(rng, n, d):
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def measure(store, queries, k, genre=None):
    lat = []
    for q in queries:
        t = time.perf_counter()
        store.search(q, k, genre)
        lat.append((time.perf_counter() - t) * 1000)
    total = sum(lat) / 1000
    return {
        "p50_ms": round(percentile(lat, 50), 3),
        "p99_ms": round(percentile(lat, 99), 3),
        "qps": round(len(queries) / total, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--qdrant-max", type=int, default=100000, help="largest size to load into embedded Qdrant")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    os.environ.setdefault("PROMPT_RETRIEVER_CACHE_DIR", tempfile.mkdtemp(prefix="bench-cache-"))
    from prompt_retriever.search.stores import ExactStore, QdrantStore

    rng = np.random.default_rng(0)
    genres = [f"genre-{i}" for i in range(27)]
    queries = unit(rng, args.queries, args.dim)
    results = {}
    for n in [int(s) for s in args.sizes.split(",")]:
        vecs = unit(rng, n, args.dim)
        ids = [f"p{i}" for i in range(n)]
        payloads = [{"genre": genres[i % len(genres)], "theme": "t"} for i in range(n)]
        row = {}
        exact = ExactStore()
        t = time.perf_counter()
        exact.upsert(ids, vecs, payloads)
        row["exact"] = {
            "load_s": round(time.perf_counter() - t, 2),
            "unfiltered": measure(exact, queries, 10),
            "genre_filter": measure(exact, queries, 10, "genre-3"),
        }
        del exact
        if n <= args.qdrant_max:
            q = QdrantStore(args.dim, path=":memory:")
            t = time.perf_counter()
            q.upsert(ids, vecs, payloads, batch=2048)
            row["qdrant_embedded"] = {
                "load_s": round(time.perf_counter() - t, 2),
                "unfiltered": measure(q, queries[:50], 10),
                "genre_filter": measure(q, queries[:50], 10, "genre-3"),
            }
            del q
        else:
            row["qdrant_embedded"] = "skipped (loading this many points into the pure-Python local mode is slow)"
        results[str(n)] = row
        print(n, row, flush=True)
    emit("bench_search", {"dim": args.dim, "k": 10, "results": results, "bar": "exact store p99 < 5 ms at 10k"})


if __name__ == "__main__":
    main()
