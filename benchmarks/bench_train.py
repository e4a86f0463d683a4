"""Wall time and training rows/s of the default fine-tune on the bundled corpus, and the whole pipeline.

python benchmarks/bench_train.py            # default fine-tune only
python benchmarks/bench_train.py --pipeline # the full default pipeline (what `make run` does), fresh
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import emit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pipeline", action="store_true", help="time the full default pipeline instead")
    args = ap.parse_args()
    os.environ["PROMPT_RETRIEVER_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-cache-")  # cold caches
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))

    if args.pipeline:
        from rich.console import Console

        from prompt_retriever.pipeline import PipelineConfig, run_pipeline

        t0 = time.perf_counter()
        res = run_pipeline(PipelineConfig(out=work / "run"), Console(quiet=True))
        secs = time.perf_counter() - t0
        import json

        summary = json.loads((work / "run" / "summary.json").read_text())
        emit(
            "bench_pipeline",
            {
                "seconds": round(secs, 1),
                "minutes": round(secs / 60, 2),
                "stages": res["ran"],
                "train": summary["train"],
                "headline": summary["headline"],
            },
        )
        return

    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.querygen import generate_heuristic
    from prompt_retriever.splits import split_by_prompt
    from prompt_retriever.train import TrainConfig, train

    gs = split_by_prompt(generate_heuristic(load_corpus()))
    cfg = TrainConfig()
    t0 = time.perf_counter()
    res = train(gs, work / "model", cfg, progress=False)
    secs = time.perf_counter() - t0
    texts_per_row = 2 + cfg.hard_negatives
    emit(
        "bench_train",
        {
            "config": {
                "epochs": cfg.epochs,
                "batch_size": cfg.batch_size,
                "hard_negatives": cfg.hard_negatives,
                "max_rows": cfg.max_rows,
                "lr": cfg.learning_rate,
            },
            "rows": res.rows,
            "steps": res.steps,
            "seconds": round(secs, 1),
            "rows_per_second": round(res.rows * cfg.epochs / secs, 2),
            "texts_per_second": round(res.rows * cfg.epochs * texts_per_row / secs, 1),
            "dev_ndcg@10_base": res.base_dev_ndcg,
            "dev_ndcg@10_best": res.best_dev_ndcg,
        },
    )


if __name__ == "__main__":
    main()
