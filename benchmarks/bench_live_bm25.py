"""In-process BM25 under live updates: `BM25Index` (changed in place) against bm25s (rebuilt per change).

Until this index, a served run without an engine rebuilt its whole bm25s index on every `add`/`remove`
(tokenizing every prompt again). Per size, in one run, on texts recombined from the bundled prompts' words
(`bench_engine.synthetic`; the bundled corpus itself at 648):

- build: bm25s (tokenize + index) and `BM25Index` (tokenize + add), seconds;
- query: 200 bundled natural-language queries one at a time, p50/p99 ms, bm25s `get_scores` (into a row
  of the score matrix, as `BM25System.scores` used it) and `BM25Index.scores`, with their ratio; and
  whether every score is equal bit for bit;
- one change: adding one prompt and removing one, ms, as a rebuild (bm25s over the changed corpus: what
  the retriever did) and in place, plus the first query after the change (it recomputes the query's terms).

    python benchmarks/bench_live_bm25.py [--sizes 648 10000 100000] [--changes 20]

Prints one JSON line and writes benchmarks/results/bench_live_bm25.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _common import cpu_info, emit, machine
from bench_engine import inputs, stats, synthetic, timed


def bm25s_build(texts: list[str]):
    import bm25s
    import Stemmer

    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)
    model = bm25s.BM25(k1=1.5, b=0.75)
    model.index(tokens, show_progress=False)
    return model, tokens.vocab


def bm25s_row(model, vocab, n: int, words: list[str]) -> np.ndarray:
    out = np.zeros((1, n), dtype=np.float32)
    known = [w for w in words if w in vocab]
    if known:
        out[0] = model.get_scores(known)
    return out


def run_size(n: int, prompts, qtexts: list[str], changes: int) -> dict:
    from prompt_retriever.encoding.encoder import prompt_document
    from prompt_retriever.search.bm25_index import BM25Index
    from prompt_retriever.search.bm25_terms import tokenize

    corpus = prompts if n == len(prompts) else synthetic(prompts, np.ones((len(prompts), 1), np.float32), n, 0.0)[0]
    texts = [prompt_document(p) for p in corpus]
    qtokens = tokenize(qtexts)

    t = time.perf_counter()
    model, vocab = bm25s_build(texts)
    build_ref = time.perf_counter() - t
    t = time.perf_counter()
    index = BM25Index()
    index.add(tokenize(texts))
    build_live = time.perf_counter() - t

    ref_rows, lat_ref = timed(lambda w: bm25s_row(model, vocab, n, w), qtokens)
    live_rows, lat_live = timed(lambda w: index.scores([w]), qtokens)
    equal = all(np.array_equal(a, b) for a, b in zip(ref_rows, live_rows, strict=True))
    # the query timings again, interleaved, for the ratio (the first pass warmed the per-term cache)
    _, lat_ref = timed(lambda w: bm25s_row(model, vocab, n, w), qtokens)
    _, lat_live = timed(lambda w: index.scores([w]), qtokens)

    extra = [prompt_document(p) for p in synthetic(prompts, np.ones((len(prompts), 1), np.float32), changes, 0.0, 7)[0]]
    rebuild_ms = []
    for text in extra[: min(changes, 3 if n >= 100_000 else changes)]:
        t = time.perf_counter()
        bm25s_build(texts + [text])
        rebuild_ms.append((time.perf_counter() - t) * 1000)
    add_ms, remove_ms, first_query_ms = [], [], []
    for i, text in enumerate(extra):
        t = time.perf_counter()
        index.add(tokenize([text]))
        add_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        index.scores([qtokens[i % len(qtokens)]])
        first_query_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        index.remove([i * 7 % len(index)])
        remove_ms.append((time.perf_counter() - t) * 1000)
    return {
        "prompts": n,
        "build_s": {"bm25s": round(build_ref, 3), "index": round(build_live, 3)},
        "query_ms": {"bm25s": stats(lat_ref), "index": stats(lat_live)},
        "query_ratio_p50": round(statistics.median(lat_live) / statistics.median(lat_ref), 3),
        "scores_equal_bit_for_bit": equal,
        "one_change_ms": {
            "rebuild_bm25s": round(statistics.median(rebuild_ms), 2),
            "add_in_place": round(statistics.median(add_ms), 3),
            "remove_in_place": round(statistics.median(remove_ms), 3),
            "first_query_after_add": round(statistics.median(first_query_ms), 3),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[648, 10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200, help="natural-language queries timed per size")
    ap.add_argument("--changes", type=int, default=20, help="single adds (each followed by a remove) per size")
    ap.add_argument("--name", default="bench_live_bm25")
    args = ap.parse_args()
    prompts, _, qtexts, _ = inputs(args.queries)
    sizes = [run_size(n, prompts, qtexts, args.changes) for n in args.sizes]
    emit(args.name, {"bench": "live_bm25", "sizes": sizes, "env": machine(), "cpu": cpu_info()})


if __name__ == "__main__":
    main()
