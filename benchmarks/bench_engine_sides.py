"""Where a hybrid's one engine round spends its time: each side alone, both in one batch, both from two threads.

On an engine index kept by `bench_served.py --keep DIR` (e.g. the 1M one), the bundled natural-language
queries (`bench_engine.inputs`, seed 1) are searched one at a time, top `--depth` per side, at each
`--efs` value, in two interleaved passes (the second's numbers are kept), as:

- dense: the HNSW search alone; bm25: the sparse search alone;
- batch: both in one `query_batch` call (what `EngineSearch` does in one round);
- threads: each side from its own thread at the same time (two cores: would they overlap?).

    python benchmarks/bench_engine_sides.py --index DIR/n1000000-real50000-sigma0.025-m16-efc100/idx

Prints one JSON line and writes benchmarks/results/bench_engine_sides.json.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import cpu_info, emit, machine
from bench_engine import inputs, stats

MODES = ("dense", "bm25", "batch", "threads")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, required=True, help="an engine index folder (bench_served --keep)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--depth", type=int, default=50, help="candidates per side")
    ap.add_argument("--efs", type=int, nargs="+", default=[512, 256], help="HNSW beam widths to try")
    ap.add_argument("--name", default="bench_engine_sides")
    args = ap.parse_args()

    from prompt_retriever.search.edge import EdgeIndex
    from prompt_retriever.search.engine_base import Ask

    _, _, qtexts, qvecs = inputs(args.queries)
    t = time.perf_counter()
    index = EdgeIndex.open(args.index)
    opened = time.perf_counter() - t
    pool = ThreadPoolExecutor(2)

    def once(mode: str, dense: Ask, bm25: Ask) -> None:
        if mode == "dense":
            index.batch([dense])
        elif mode == "bm25":
            index.batch([bm25])
        elif mode == "batch":
            index.batch([dense, bm25])
        else:
            a, b = pool.submit(index.batch, [dense]), pool.submit(index.batch, [bm25])
            a.result(), b.result()

    rows = []
    for ef in args.efs:
        lat: dict[str, list[float]] = {}
        for mode in MODES * 2:  # the second pass is kept
            lat[mode] = []
            for text, vec in zip(qtexts, qvecs, strict=True):
                dense, bm25 = Ask("dense", vec, args.depth, ef=ef), Ask("bm25", text, args.depth)
                t = time.perf_counter()
                once(mode, dense, bm25)
                lat[mode].append((time.perf_counter() - t) * 1000)
        rows.append({"ef": ef, **{mode: stats(lat[mode]) for mode in MODES}})
    emit(
        args.name,
        {
            "bench": "engine_sides",
            "index": str(args.index),
            "prompts": index.terms.n_docs,
            "open_s": round(opened, 2),
            "depth": args.depth,
            "queries": len(qtexts),
            "rows": rows,
            "env": machine(),
            "cpu": cpu_info(),
        },
    )


if __name__ == "__main__":
    main()
