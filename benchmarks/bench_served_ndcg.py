"""A run's served system reproduces its recorded test NDCG@10 through the HTTP API on every engine.

python benchmarks/bench_served_ndcg.py RUN [--engines exact,edge]

For each engine: `PromptRetriever.from_run(RUN, engine=E)` behind the real FastAPI app (TestClient), one
`GET /api/search?q=...&k=10` per test query of the run's primary golden set, scored as served (rank
order), against `RUN/system.json`'s `test_ndcg@10`. Goes to `results/bench_served_ndcg.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import emit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--engines", default="exact,edge")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from prompt_retriever.evaluation.metrics import evaluate
    from prompt_retriever.golden import GoldenSet
    from prompt_retriever.pipeline import primary_golden
    from prompt_retriever.search import PromptRetriever
    from prompt_retriever.serving.api import create_app

    info = json.loads((args.run / "system.json").read_text())
    gs = GoldenSet.load(args.run / "golden")
    queries = primary_golden(gs).split_queries("test")
    rows = []
    for engine in args.engines.split(","):
        t = time.perf_counter()
        client = TestClient(create_app(PromptRetriever.from_run(args.run, engine=engine)))
        run = {}
        for q in queries:
            res = client.get("/api/search", params={"q": q.text, "k": 10})
            res.raise_for_status()
            run[q.id] = {x["prompt"]["id"]: -float(n) for n, x in enumerate(res.json()["results"], 1)}
        ndcg = evaluate(run, {q.id: gs.qrels[q.id] for q in queries}, ["ndcg@10"])["ndcg@10"]
        rows.append(
            {
                "engine": engine,
                "api_test_ndcg@10": ndcg,
                "equal_to_recorded": ndcg == info["test_ndcg@10"],
                "seconds": round(time.perf_counter() - t, 1),
            }
        )
        print(rows[-1], flush=True)
    emit(
        "bench_served_ndcg",
        {
            "run": str(args.run),
            "system": info.get("label"),
            "queries": len(queries),
            "recorded": info["test_ndcg@10"],
            "engines": rows,
        },
    )


if __name__ == "__main__":
    main()
