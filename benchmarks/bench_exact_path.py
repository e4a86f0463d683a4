"""Today's in-process hybrid search against another checkout's, pair by pair (encoding excluded).

python benchmarks/bench_exact_path.py --vs-src OTHER/src [--sizes 648,10000] [--pairs 3]

Per size, each side runs in its own process (its `prompt_retriever` from this checkout's `src`, or from
`--vs-src`), alternating A B A B; a process builds a corpus of N prompts (the bundled ones, then texts
recombined from their words, random unit vectors; seed 0), scores 150 bundled natural-language queries
one at a time with `systems.system_run("hybrid-adaptive", ...)` from the query's dense row (one matrix
product) and BM25 row (bm25s), and reports the median and p99 CPU time per search (process time, less
sensitive than wall time to other work on a shared machine). The ratio this / other is taken pair by
pair; its median is reported. Goes to `results/bench_exact_path.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def measure(n: int) -> dict:
    import numpy as np

    from prompt_retriever.corpus import Prompt, load_corpus
    from prompt_retriever.search.systems import BM25System, system_run

    base = load_corpus()
    rng = np.random.default_rng(0)
    words = np.array([w for p in base for w in p.text.split()])
    corpus = list(base[:n])
    for i in range(len(corpus), n):
        src = base[i % len(base)]
        title = " ".join(words[rng.integers(0, len(words), 3)])
        text = " ".join(words[rng.integers(0, len(words), len(src.text.split()))])
        corpus.append(Prompt(id=f"s{i}", genre=src.genre, theme=src.theme, title=title, text=text))
    vecs = rng.standard_normal((n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    path = SRC / "prompt_retriever/data/natural_queries.jsonl"
    texts = [json.loads(line)["query"] for line in path.read_text().splitlines()[:150]]
    qv = rng.standard_normal((len(texts), 384)).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    bm25 = BM25System(corpus)
    ids = [p.id for p in corpus]

    def one(i: int):
        dense = qv[i : i + 1] @ vecs.T
        scores = bm25.scores([texts[i]])
        args = dict(depth=50, texts=[texts[i]], alphas=(0.3, 0.5, 0.7, 0.8))
        return system_run("hybrid-adaptive", ["q"], ids, dense, scores, 10, **args)

    for i in range(20):
        one(i)
    lat = []
    for i in range(len(texts)):
        t = time.process_time()
        one(i)
        lat.append((time.process_time() - t) * 1000)
    lat.sort()
    return {"p50_cpu_ms": round(statistics.median(lat), 3), "p99_cpu_ms": round(lat[int(0.99 * len(lat)) - 1], 3)}


def child(src: Path, n: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(n)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vs-src", type=Path, help="the other checkout's src folder")
    ap.add_argument("--sizes", default="648,10000")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    if args.vs_src is None:
        ap.error("--vs-src OTHER/src is required")
    from _common import emit

    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        pairs = [(child(SRC, n), child(args.vs_src.resolve(), n)) for _ in range(args.pairs)]
        ratios = [a["p50_cpu_ms"] / b["p50_cpu_ms"] for a, b in pairs]
        rows.append(
            {
                "prompts": n,
                "this": [a for a, _ in pairs],
                "other": [b for _, b in pairs],
                "ratio_p50_this_over_other": round(statistics.median(ratios), 3),
            }
        )
        print(rows[-1], flush=True)
    emit("bench_exact_path", {"other_src": str(args.vs_src), "sizes": rows})


if __name__ == "__main__":
    main()
