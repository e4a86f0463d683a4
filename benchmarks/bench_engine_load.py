"""The server under 50 clients with the query-adaptive hybrid at N prompts, exact path against the engine.

python benchmarks/bench_engine_load.py [--prompts 100000] [--clients 50] [--seconds 30] [--backend onnx-int8]

Builds one index folder of N synthetic prompts (benchmarks/bench_engine.py's corpus: texts recombined
from the bundled prompts' words, vectors the bundled model's embeddings of the bundled prompts plus
Gaussian noise, no encoding) carrying a `hybrid-adaptive` system with fixed bucket weights and the
`--backend` recorded, so the server encodes only queries. Then, one after the other in this invocation,
`serve --index DIR --engine exact` and `serve --index DIR --engine edge` (which builds its engine index
beside DIR at start-up, counted in its start-up time) under the closed-loop load of bench_load.py (wrk
when installed, 50 clients cycling through 3,496 queries, 5 s warm-up, then `--seconds`). Reported per
engine: requests/s, p50/p99, errors, start-up seconds and memory, and the ratios. Goes to
`results/bench_engine_load_<N>.json`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _common import emit
from bench_engine import synthetic
from bench_load import load_queries, measure


def build_index(n: int, out: Path, backend: str, alphas: tuple[float, ...]) -> float:
    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.encoding.encoder import Encoder, prompt_document
    from prompt_retriever.search import PromptRetriever
    from prompt_retriever.search.systems import SystemSpec

    t = time.perf_counter()
    prompts = load_corpus()
    enc = Encoder("all-MiniLM-L6-v2", backend=backend)
    emb = enc.encode_documents([prompt_document(p) for p in prompts])
    corpus, vecs = synthetic(prompts, emb, n, 0.025)
    r = PromptRetriever(backend=backend, system=SystemSpec("hybrid-adaptive", alphas=alphas))
    r.prompts, r.embeddings = corpus, vecs
    r.save(out)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prompts", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--backend", default="onnx-int8", choices=["torch", "onnx", "onnx-int8"])
    ap.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    ap.add_argument("--port", type=int, default=8771)
    ap.add_argument("--alphas", default="0.3,0.5,0.7,0.8")
    args = ap.parse_args()
    alphas = tuple(float(a) for a in args.alphas.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-engine-load-"))
    try:
        index = work / "index"
        build_s = build_index(args.prompts, index, args.backend, alphas)
        queries = load_queries()
        rows = {}
        for engine in ("exact", "edge"):
            serve_args = ["--index", str(index), "--engine", engine, "--workers", "2"]
            rows[engine] = measure(f"{engine}-{args.prompts}", serve_args, args, queries, work, args.port)
            print(engine, rows[engine], flush=True)
        ratios = {
            "rps_edge_over_exact": round(rows["edge"]["requests_per_second"] / rows["exact"]["requests_per_second"], 2),
            "p99_edge_over_exact": round(rows["edge"]["latency_ms_p99"] / rows["exact"]["latency_ms_p99"], 2),
        }
        emit(
            f"bench_engine_load_{args.prompts}",
            {
                "prompts": args.prompts,
                "system": "hybrid-adaptive",
                "alphas": list(alphas),
                "backend": args.backend,
                "clients": args.clients,
                "seconds": args.seconds,
                "client": args.client,
                "index_build_s": round(build_s, 1),
                "engines": rows,
                **ratios,
            },
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
