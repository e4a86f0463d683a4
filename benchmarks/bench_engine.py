"""Qdrant Edge (`search/edge.py`) against today's exact numpy path on synthetic corpora.

python benchmarks/bench_engine.py [--sizes 100000] [--queries 200] [--sigma 0.025] [--m 32]
    [--ef-construct 256] [--efs 512,256,1024] [--name bench_engine]

Corpus of N prompts: prompt i copies genre and theme of bundled prompt j = i mod 648; its title (3 words)
and text (as many words as prompt j's text) are drawn uniformly, with a fixed seed, from the pooled words
of all bundled prompts' texts. Its vector is the bundled model's embedding of prompt j's document plus
Gaussian noise (sigma per dimension, default 0.025, a noise norm of about 0.49 in 384 dimensions), then
L2-normalised. Queries: the bundled natural-language queries (data/natural_queries.jsonl), a fixed sample,
encoded once with the bundled model; encoding is excluded from every timing.

Exact reference: `ExactStore` (numpy matrix product, today's dense path) and `BM25System` (bm25s over the
whole corpus, today's BM25 path). Both sides run single-query, in this process, on the same corpus.
Measured per size: build time (upsert, HNSW optimize), RSS growth, p50/p99 of dense and BM25 candidates
(depth 100) and of the exact paths, overlap@10 with the exact ranking for each search-time ef, the
maximum BM25 score difference at the engine's top 10, and the cost of one delete with an exact reweight.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import emit, percentile

DEPTH = 100


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def synthetic(prompts, emb: np.ndarray, n: int, sigma: float, seed: int = 0):
    from prompt_retriever.corpus import Prompt

    rng = np.random.default_rng(seed)
    words = np.array([w for p in prompts for w in p.text.split()])
    out = []
    for i in range(n):
        src = prompts[i % len(prompts)]
        text = " ".join(words[rng.integers(0, len(words), len(src.text.split()))])
        title = " ".join(words[rng.integers(0, len(words), 3)])
        out.append(Prompt(id=f"s{i}", genre=src.genre, theme=src.theme, title=title, text=text))
    src_rows = np.arange(n) % len(prompts)
    vecs = emb[src_rows] + rng.normal(0.0, sigma, (n, emb.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return out, vecs.astype(np.float32)


def timed(fn, items) -> tuple[list, list[float]]:
    results, lat = [], []
    for item in items:
        t = time.perf_counter()
        results.append(fn(item))
        lat.append((time.perf_counter() - t) * 1000)
    return results, lat


def overlap(a: list, b: list, k: int = 10) -> float:
    top_b = {i for i, _ in b[:k]}
    return len({i for i, _ in a[:k]} & top_b) / max(1, min(k, len(top_b)))


def stats(lat: list[float]) -> dict:
    return {"p50_ms": round(percentile(lat, 50), 3), "p99_ms": round(percentile(lat, 99), 3)}


def inputs(n_queries: int):
    """The bundled prompts, their embeddings by the bundled model, and a fixed sample (seed 1) of
    `n_queries` bundled natural-language queries with their embeddings: what every size starts from."""
    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.encoding.encoder import Encoder, prompt_document

    prompts = load_corpus()
    enc = Encoder("all-MiniLM-L6-v2", use_cache=False)
    emb = enc.encode_documents([prompt_document(p) for p in prompts])
    path = Path(__file__).resolve().parents[1] / "src/prompt_retriever/data/natural_queries.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(1)
    qtexts = [rows[i]["query"] for i in rng.choice(len(rows), n_queries, replace=False)]
    return prompts, emb, qtexts, enc.encode_queries(qtexts)


def build_engine(folder: Path, corpus, vecs: np.ndarray, hnsw):
    """An `EdgeIndex` of `corpus` in `folder`, built and persisted, and its build facts: upsert and HNSW
    optimize seconds, resident memory growth."""
    from prompt_retriever.search.edge import EdgeIndex

    base = rss_mb()
    t = time.perf_counter()
    index = EdgeIndex.create(folder, vecs.shape[1], hnsw=hnsw)
    index.upsert(corpus, vecs)
    upsert = time.perf_counter() - t
    t = time.perf_counter()
    index.optimize()
    index.persist()
    facts = {
        "engine_upsert_s": round(upsert, 2),
        "engine_optimize_s": round(time.perf_counter() - t, 2),
        "engine_rss_mb": round(rss_mb() - base, 1),
    }
    return index, facts


def run_size(n, prompts, emb, qtexts, qvecs, args) -> dict:
    from prompt_retriever.search.edge import HnswParams
    from prompt_retriever.search.stores import ExactStore, top_k_indices
    from prompt_retriever.search.systems import BM25System

    corpus, vecs = synthetic(prompts, emb, n, args.sigma)
    row: dict = {"prompts": n}
    base = rss_mb()
    t = time.perf_counter()
    exact = ExactStore(vecs.shape[1])
    exact.upsert([p.id for p in corpus], vecs, [{"genre": p.genre, "theme": p.theme} for p in corpus])
    bm25 = BM25System(corpus)
    row["exact_build_s"] = round(time.perf_counter() - t, 2)
    row["exact_rss_mb"] = round(rss_mb() - base, 1)

    folder = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    hnsw = HnswParams(m=args.m, ef_construct=args.ef_construct, ef=args.efs[0])
    index, built = build_engine(folder / "idx", corpus, vecs, hnsw)
    row.update(built)
    row["engine_disk_mb"] = round(folder_mb(folder), 1)
    row["segments"] = index.shard.info().segments_count

    exact.search_many(qvecs[:20], DEPTH)  # warm-up
    bm25.scores(qtexts)
    exact_dense, lat = timed(lambda v: exact.search(v, DEPTH), qvecs)
    row["exact_dense"] = stats(lat)

    def exact_bm25(text):
        s = bm25.scores([text])[0]
        top = top_k_indices(s, DEPTH)
        return [(bm25.ids[i], float(s[i])) for i in top if s[i] > 0]

    exact_sparse, lat = timed(exact_bm25, qtexts)
    row["exact_bm25"] = stats(lat)

    for v in qvecs:  # warm-up: the first pass over a fresh shard pages its files in
        index.dense_candidates(v[None, :], DEPTH)
    row["engine_dense"] = {}
    for ef in args.efs:
        index.hnsw = HnswParams(m=args.m, ef_construct=args.ef_construct, ef=ef)
        got, lat = timed(lambda v: index.dense_candidates(v[None, :], DEPTH)[0], qvecs)
        ov = float(np.mean([overlap(g, e) for g, e in zip(got, exact_dense, strict=True)]))
        row["engine_dense"][f"ef{ef}"] = {**stats(lat), "overlap10": round(ov, 4)}
    index.bm25_candidates(qtexts, DEPTH)  # warm-up
    got, lat = timed(lambda q: index.bm25_candidates([q], DEPTH)[0], qtexts)
    exact_by_q = [dict(e) for e in exact_sparse]
    pos = {pid: n for n, pid in enumerate(bm25.ids)}
    diffs = [
        abs(s - bm25.scores([q])[0][pos[p]]) for q, g in zip(qtexts[:20], got[:20], strict=True) for p, s in g[:10]
    ]
    row["engine_bm25"] = {
        **stats(lat),
        "overlap10": round(float(np.mean([overlap(g, e) for g, e in zip(got, exact_sparse, strict=True)])), 4),
        "top10_score_equal": all(
            abs(s - exact_by_q[n].get(p, -1)) < 1e-4 for n, g in enumerate(got) for p, s in g[:10]
        ),
        "max_abs_diff_first20q": float(max(diffs or [0.0])),
    }
    for key in ("dense", "bm25"):
        best = row["engine_dense"][f"ef{args.efs[0]}"] if key == "dense" else row["engine_bm25"]
        row[f"ratio_p50_{key}"] = round(row[f"exact_{key}"]["p50_ms"] / best["p50_ms"], 2)
    t = time.perf_counter()
    index.delete([corpus[0].id])
    row["delete_one_with_reweight_s"] = round(time.perf_counter() - t, 2)
    index.close()
    shutil.rmtree(folder, ignore_errors=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--sigma", type=float, default=0.025)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--ef-construct", type=int, default=256)
    ap.add_argument("--efs", default="512,256,1024", help="search-time ef values; the first is the default")
    ap.add_argument("--name", default="bench_engine")
    args = ap.parse_args()
    args.efs = [int(x) for x in args.efs.split(",")]
    os.environ["PROMPT_RETRIEVER_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-cache-")

    from importlib.metadata import version

    prompts, emb, qtexts, qvecs = inputs(args.queries)
    sizes = [run_size(int(n), prompts, emb, qtexts, qvecs, args) for n in args.sizes.split(",")]
    emit(
        args.name,
        {
            "engine": f"qdrant-edge-py {version('qdrant-edge-py')}",
            "depth": DEPTH,
            "queries": args.queries,
            "sigma": args.sigma,
            "m": args.m,
            "ef_construct": args.ef_construct,
            "sizes": sizes,
        },
    )


if __name__ == "__main__":
    main()
