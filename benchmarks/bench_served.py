"""The served hybrid on the engine (`search/engine.py` over Qdrant Edge) against today's exact path, by size.

python benchmarks/bench_served.py [--sizes 648,2000,5000,10000,100000] [--queries 200] [--name bench_served]
    [--real R] [--m M --ef-construct E --ef F] [--keep DIR] [--fusion corpus|candidates]

Corpus and queries as benchmarks/bench_engine.py makes them (texts recombined from the bundled prompts'
words, vectors the bundled model's embeddings of the bundled prompts plus Gaussian noise, the bundled
natural-language queries encoded once; encoding is excluded from every timing). With `--real R` the
vectors are instead the model's embeddings of the first R synthetic prompts' own texts, and perturbed
copies of those beyond R (far fewer near-duplicates: a corpus more like a real one). The system: the
query-adaptive hybrid (`hybrid-adaptive`, the kind `make run` chooses) with fixed bucket weights
`--alphas` and candidate depth `SystemSpec`'s default, plus dense alone. The engine's hybrid is measured
at each `--max-depths` (how deep a query whose threshold proof fails may ask before its candidates'
best answer it unproven; 50 = one round, no deepening); with `--local` also with BM25 scored in process
(bm25s over every prompt) beside the engine's dense side (`engine.LocalScores`). With `--fusion
candidates` the hybrid is instead the union's best (`SystemSpec.fusion`), each `--max-depths` value its
depth: one round on the engine, the same union fused from full matrices on the exact path, so overlap@10
compares one definition computed two ways (what is left is the HNSW graph's approximation).

Per size, single query, in this process, one path after the other on the same corpus:
- exact: today's path, `systems.system_run` over full score matrices (numpy matrix product over every
  embedding, bm25s over every document, candidate fusion with whole-corpus bounds) - what
  `PromptRetriever` serves with `--engine exact` and what evaluation measures;
- engine: `EngineSearch.run` over an `EdgeIndex` (HNSW `HnswParams()` defaults unless `--m`,
  `--ef-construct`, `--ef` say otherwise; `--keep DIR` keeps each size's index and reuses it next time,
  for sizes whose build takes longer than the measurement);
p50/p99 of each, their ratio, overlap@10 of the engine's results with the exact ones (dense and hybrid),
build times and resident memory growth.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import emit
from bench_engine import build_engine, inputs, overlap, rss_mb, stats, synthetic, timed

K = 10


def real_vectors(corpus, real: int, sigma: float, seed: int = 0) -> np.ndarray:
    """The bundled model's embeddings (onnx-int8) of the first `real` synthetic prompts' documents; prompt
    i beyond them gets prompt (i mod real)'s vector plus Gaussian noise (`sigma` per dimension), renormalised.
    Embeddings are cached by count in ~/.cache/prompt-retriever-bench (texts are the same for a seed)."""
    from prompt_retriever.encoding.encoder import Encoder, prompt_document

    real = min(real, len(corpus))
    cache = Path.home() / ".cache" / "prompt-retriever-bench" / f"real-{real}-seed0.npy"
    if cache.exists():
        base = np.load(cache)
    else:
        t = time.perf_counter()
        enc = Encoder("all-MiniLM-L6-v2", backend="onnx-int8", use_cache=False)
        base = enc.encode_documents([prompt_document(p) for p in corpus[:real]])
        print(f"encoded {real} documents in {time.perf_counter() - t:.0f} s", flush=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, base)
    n = len(corpus)
    rows = np.arange(n) % real
    vecs = base[rows].astype(np.float32)
    if n > real:
        rng = np.random.default_rng(seed)
        vecs[real:] += rng.normal(0.0, sigma, (n - real, vecs.shape[1])).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs


def run_size(n: int, prompts, emb, qtexts, qvecs, args) -> dict:
    from prompt_retriever.search.edge import EdgeIndex, HnswParams
    from prompt_retriever.search.engine import EngineSearch, LocalScores
    from prompt_retriever.search.runs import filter_mask
    from prompt_retriever.search.systems import BM25System, SystemSpec, system_run

    corpus, vecs = synthetic(prompts, emb, n, args.sigma)
    if args.real:
        vecs = real_vectors(corpus, args.real, args.sigma)
    ids = [p.id for p in corpus]
    order = {pid: i for i, pid in enumerate(ids)}
    spec = SystemSpec("hybrid-adaptive", alphas=args.alphas, fusion=args.fusion)
    # each measured hybrid's spec: with fusion "candidates" a `--max-depths` value is the system's depth
    # (one round, and the exact path fuses the same union), with "corpus" how deep the proof may go
    specs = {
        f"hybrid-adaptive@{d}": replace(spec, depth=d) if args.fusion == "candidates" else spec for d in args.max_depths
    }
    row: dict = {"prompts": n}

    base = rss_mb()
    t = time.perf_counter()
    bm25 = BM25System(corpus)
    row["exact_build_s"] = round(time.perf_counter() - t, 2)
    row["exact_rss_mb"] = round(rss_mb() - base + vecs.nbytes / 2**20, 1)

    def exact(i: int, kind: str):
        text = qtexts[i]
        dense = qvecs[i : i + 1] @ vecs.T
        scores = bm25.scores([text]) if kind != "dense" else None
        sp = specs.get(kind.replace("-local", ""), SystemSpec("dense") if kind == "dense" else spec)
        run = system_run(
            sp.kind,
            ["q"],
            ids,
            dense,
            scores,
            K,
            depth=sp.depth,
            texts=[text],
            alphas=sp.alphas,
            bounds=sp.bounds,
            fusion=sp.fusion,
        )["q"]
        return sorted(run.items(), key=lambda kv: -kv[1])

    hnsw = HnswParams(m=args.m, ef_construct=args.ef_construct, ef=args.ef)
    kept = args.keep / f"n{n}-real{args.real}-sigma{args.sigma}-m{args.m}-efc{args.ef_construct}" if args.keep else None
    folder = kept or Path(tempfile.mkdtemp(prefix="bench-served-"))
    if kept and (kept / "build.json").exists():  # built by an earlier invocation with the same inputs
        index = EdgeIndex.open(kept / "idx")
        index.hnsw = hnsw
        if index.terms.n_docs != n:
            raise SystemExit(f"{kept}: holds {index.terms.n_docs} prompts, not {n}")
        row.update(json.loads((kept / "build.json").read_text()), engine_reused=str(kept))
    else:
        index, built = build_engine(folder / "idx", corpus, vecs, hnsw)
        row.update(built)
        if kept:
            (kept / "build.json").write_text(json.dumps(built))
    row["segments"] = index.shard.info().segments_count
    gc.collect()

    depths = args.max_depths
    searches = {
        kind: EngineSearch(index, SystemSpec(kind) if kind == "dense" else spec, order)
        for kind in ("dense", "hybrid-adaptive")
    }

    def engine(i: int, kind: str):
        run = searches[kind].run(["q"], [qtexts[i]], qvecs[i : i + 1], K)["q"]
        return sorted(run.items(), key=lambda kv: -kv[1])

    genres, themes = [p.genre for p in corpus], [p.theme for p in corpus]
    local = LocalScores(vecs, ids, bm25.scores, lambda g, t: filter_mask(genres, themes, g, t))
    for d in depths:
        sp = specs[f"hybrid-adaptive@{d}"]
        searches[f"hybrid-adaptive@{d}"] = EngineSearch(index, sp, order, max_depth=d)
        if args.local:
            searches[f"hybrid-adaptive-local@{d}"] = EngineSearch(index, sp, order, max_depth=d, local=local)

    items = list(range(len(qtexts)))
    local_kinds = [f"hybrid-adaptive-local@{d}" for d in depths] if args.local else []
    for kind in ("dense", *(f"hybrid-adaptive@{d}" for d in depths), *local_kinds):
        timed(lambda i, kind=kind: exact(i, kind), items[:20])  # warm-up
        timed(lambda i, kind=kind: engine(i, kind), items)  # warm-up: pages the shard in
        searches[kind].unproven = 0
        want, lat_exact = timed(lambda i, kind=kind: exact(i, kind), items)
        got, lat_engine = timed(lambda i, kind=kind: engine(i, kind), items)
        row[kind] = {
            "unproven_queries": searches[kind].unproven,
            "exact": stats(lat_exact),
            "engine": stats(lat_engine),
            "ratio_p50_exact_over_engine": round(stats(lat_exact)["p50_ms"] / stats(lat_engine)["p50_ms"], 2),
            "ratio_p99_exact_over_engine": round(stats(lat_exact)["p99_ms"] / stats(lat_engine)["p99_ms"], 2),
            "overlap10": round(float(np.mean([overlap(g, w, K) for g, w in zip(got, want, strict=True)])), 4),
        }
        print(n, kind, row[kind], flush=True)
    index.close()
    if not kept:
        shutil.rmtree(folder, ignore_errors=True)
    return row


def main() -> None:
    from prompt_retriever.search.edge import HnswParams

    HNSW_DEFAULTS = HnswParams()  # noqa: N806
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="648,2000,5000,10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--sigma", type=float, default=0.025)
    ap.add_argument("--alphas", default="0.3,0.5,0.7,0.8", help="the adaptive hybrid's weight per length bucket")
    ap.add_argument(
        "--real",
        type=int,
        default=0,
        help="embed this many synthetic prompts' own texts with the model (others: perturbed copies); "
        "0: every vector is a bundled prompt's embedding plus noise, as in bench_engine.py",
    )
    ap.add_argument(
        "--local",
        action="store_true",
        help="also measure the hybrid with BM25 scored in process beside the engine's dense side (LocalScores)",
    )
    ap.add_argument(
        "--max-depths",
        default="50,200,800",
        help="EngineSearch max_depth values to measure (with --fusion candidates: the system's depths)",
    )
    ap.add_argument(
        "--fusion",
        default="corpus",
        choices=("corpus", "candidates"),
        help="the hybrid's fusion (SystemSpec.fusion): candidates = the union's best, one round on the engine",
    )
    ap.add_argument("--m", type=int, default=HNSW_DEFAULTS.m, help="HNSW graph degree")
    ap.add_argument("--ef-construct", type=int, default=HNSW_DEFAULTS.ef_construct, help="HNSW build beam")
    ap.add_argument("--ef", type=int, default=HNSW_DEFAULTS.ef, help="HNSW search beam")
    ap.add_argument(
        "--keep",
        type=Path,
        help="keep each size's engine index in a folder under this one and reuse it in a later invocation "
        "with the same size, --real, --sigma, --m and --ef-construct (its build times are the first run's)",
    )
    ap.add_argument("--name", default="bench_served")
    args = ap.parse_args()
    args.alphas = tuple(float(a) for a in args.alphas.split(","))
    args.max_depths = [int(d) for d in args.max_depths.split(",")]
    os.environ["PROMPT_RETRIEVER_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-cache-")

    from importlib.metadata import version

    prompts, emb, qtexts, qvecs = inputs(args.queries)
    sizes = [run_size(int(n), prompts, emb, qtexts, qvecs, args) for n in args.sizes.split(",")]
    emit(
        args.name,
        {
            "engine": f"qdrant-edge-py {version('qdrant-edge-py')}",
            "system": "hybrid-adaptive",
            "alphas": list(args.alphas),
            "fusion": args.fusion,
            "k": K,
            "queries": args.queries,
            "sigma": args.sigma,
            "real_embeddings": args.real,
            "hnsw": {"m": args.m, "ef_construct": args.ef_construct, "ef": args.ef},
            "sizes": sizes,
        },
    )


if __name__ == "__main__":
    main()
