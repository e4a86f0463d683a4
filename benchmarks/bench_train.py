"""Wall time and training rows/s of the default fine-tune on the bundled corpus, and the whole pipeline.

python benchmarks/bench_train.py            # default fine-tune only
python benchmarks/bench_train.py --pipeline # the full default pipeline (what `make run` does), fresh
python benchmarks/bench_train.py --step     # where one default training step's time goes
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
    ap.add_argument("--step", action="store_true", help="time the parts of one default training step instead")
    args = ap.parse_args()
    if args.step:
        step_profile()
        return
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
    from prompt_retriever.golden.heuristic import generate_heuristic
    from prompt_retriever.golden.splits import split_by_prompt
    from prompt_retriever.training import TrainConfig, train

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


def step_profile(steps: int = 10, warmup: int = 2) -> None:
    """Tokenising, forward (loss), backward and AdamW of MNRL steps shaped like the default fine-tune's:
    batch 16, each row a query and 1 + 3 prompts (bundled prompts and heuristic queries sampled with a
    seed; the cost depends on the shape and text lengths, not on which prompts are the hard negatives)."""
    import random

    import torch
    from sentence_transformers import SentenceTransformer, losses

    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.encoding.encoder import prompt_document
    from prompt_retriever.encoding.models import resolve_model
    from prompt_retriever.golden.heuristic import generate_heuristic
    from prompt_retriever.training import TrainConfig

    cfg = TrainConfig()
    prompts = load_corpus()
    docs = [prompt_document(p, cfg.template) for p in prompts]
    queries = [q.text for q in generate_heuristic(prompts).queries]
    model = SentenceTransformer(resolve_model(cfg.base).location, device="cpu")
    model.train()  # dropout on, as in the trainer
    loss = losses.MultipleNegativesRankingLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    rng = random.Random(cfg.seed)
    parts = {"tokenise": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for i in range(warmup + steps):
        cols = [rng.sample(queries, cfg.batch_size)]
        cols += [rng.sample(docs, cfg.batch_size) for _ in range(1 + cfg.hard_negatives)]
        t0 = time.perf_counter()
        feats = [model.preprocess(c) for c in cols]
        t1 = time.perf_counter()
        value = loss(feats, None)
        t2 = time.perf_counter()
        value.backward()
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad()
        t4 = time.perf_counter()
        if i >= warmup:
            for k, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                parts[k] += dt / steps
    total = sum(parts.values())
    emit(
        "bench_train_step",
        {
            "batch_size": cfg.batch_size,
            "texts_per_step": cfg.batch_size * (2 + cfg.hard_negatives),
            "steps_timed": steps,
            "seconds_per_step": {k: round(v, 3) for k, v in parts.items()} | {"total": round(total, 3)},
            "share": {k: round(v / total, 3) for k, v in parts.items()},
        },
    )


if __name__ == "__main__":
    main()
