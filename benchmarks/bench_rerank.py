"""A cross-encoder reranker over a run's served system, measured on dev: quality and the cost per search.

    python benchmarks/bench_rerank.py --run runs/bundled [--depth 20] [--rows 3000] [--epochs 1]

Trains a sentence-transformers `CrossEncoder` from the bundled all-MiniLM-L6-v2 weights (a new one-logit
head) with binary cross-entropy on the pipeline's own training rows (train split only: each query with
its positive and its first mined hard negative, the default row budget), then reranks the top `depth`
of the run's served system (`PromptRetriever.from_run`) for every dev query. Reported: dev NDCG@10 by
family (template, natural, natural judged against the whole corpus) for the served system alone, the
reranked list, and the reranker's score interpolated with the first stage's rank; the training time;
and the reranker's time for one search (`depth` pairs, torch, both cores, median over 30 dev queries)
next to the served system's own time for one search. The test split is never read. Writes
`results/bench_rerank[_NAME].json`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import emit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("runs/bundled"), help="pipeline run folder")
    ap.add_argument("--depth", type=int, default=20, help="first-stage results reranked per query")
    ap.add_argument("--rows", type=int, default=3000, help="training rows (the pipeline's default budget)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--name", default="", help="suffix of the result file")
    args = ap.parse_args()

    import numpy as np
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from prompt_retriever.encoding.encoder import prompt_document
    from prompt_retriever.encoding.models import resolve_model
    from prompt_retriever.evaluation.choose import families
    from prompt_retriever.evaluation.metrics import evaluate
    from prompt_retriever.golden import GoldenSet
    from prompt_retriever.search.retriever import PromptRetriever, SearchRequest
    from prompt_retriever.training import TrainConfig
    from prompt_retriever.training.train import prepare_rows, seed_everything

    gs = GoldenSet.load(args.run / "golden")
    cfg = TrainConfig(max_rows=args.rows, hard_negatives=1)
    docs = {p.id: prompt_document(p, cfg.template) for p in gs.corpus}
    rows, _, _ = prepare_rows(gs, cfg)
    pairs = {"query": [], "document": [], "label": []}
    for r in rows:
        for pid, label in [(r.positive_id, 1.0)] + [(n, 0.0) for n in r.negative_ids[:1]]:
            pairs["query"].append(r.query)
            pairs["document"].append(docs[pid])
            pairs["label"].append(label)
    seed_everything(cfg.seed)
    model = CrossEncoder(resolve_model("all-MiniLM-L6-v2").location, num_labels=1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        targs = CrossEncoderTrainingArguments(
            output_dir=work,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            warmup_ratio=0.1,
            seed=cfg.seed,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            logging_steps=50,
        )
        trainer = CrossEncoderTrainer(
            model=model, args=targs, train_dataset=Dataset.from_dict(pairs), loss=BinaryCrossEntropyLoss(model)
        )
        trainer.train()
    train_seconds = time.perf_counter() - t0

    served = PromptRetriever.from_run(args.run)
    fams = families(gs, "dev")
    judged = families(gs, "dev", judged_only=True).get("natural", [])
    sets = {**fams, "natural_judged": judged}
    scores: dict[str, dict[str, float]] = {}
    first_times, rerank_times = [], []
    for name, queries in sets.items():
        qrels = {q.id: gs.qrels[q.id] for q in queries}
        hits = served.search_requests([SearchRequest(q.text, k=args.depth) for q in queries])
        first, reranked, mixed = {}, {}, {}
        for i, (q, hs) in enumerate(zip(queries, hits, strict=True)):
            ids = [h.prompt.id for h in hs]
            first[q.id] = {pid: float(args.depth - r) for r, pid in enumerate(ids)}
            t = time.perf_counter()
            batch = [(q.text, docs[pid]) for pid in ids]
            ce = np.asarray(model.predict(batch, batch_size=args.depth, show_progress_bar=False))
            if name != "natural_judged" and i < 30:
                rerank_times.append((time.perf_counter() - t) * 1000)
            reranked[q.id] = {pid: float(s) for pid, s in zip(ids, ce, strict=True)}
            z = (ce - ce.mean()) / (ce.std() + 1e-9)  # the reranker's score, standardised, plus a rank prior
            mixed[q.id] = {pid: float(z[r] - 0.1 * r) for r, pid in enumerate(ids)}
        scores[name] = {
            "served": round(evaluate(first, qrels, ["ndcg@10"])["ndcg@10"], 4),
            "reranked": round(evaluate(reranked, qrels, ["ndcg@10"])["ndcg@10"], 4),
            "reranked_with_rank_prior": round(evaluate(mixed, qrels, ["ndcg@10"])["ndcg@10"], 4),
            "queries": len(queries),
        }
        print(name, scores[name], flush=True)
    for q in fams.get("natural", [])[:30]:
        t = time.perf_counter()
        served.search_requests([SearchRequest(q.text, k=args.depth)])
        first_times.append((time.perf_counter() - t) * 1000)
    mean_over = [f for f in fams]
    result = {
        "run": str(args.run),
        "depth": args.depth,
        "training": {
            "rows": len(rows),
            "pairs": len(pairs["label"]),
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "seconds": round(train_seconds, 1),
        },  # fmt: skip
        "dev_ndcg@10": scores,
        "dev_mean_over_families": {
            k: round(sum(scores[f][k] for f in mean_over) / len(mean_over), 4)
            for k in ("served", "reranked", "reranked_with_rank_prior")
        },
        "ms_per_search": {
            "served_system_torch": round(statistics.median(first_times), 2),
            "reranker_torch": round(statistics.median(rerank_times), 2),
        },
    }
    emit(f"bench_rerank_{args.name}" if args.name else "bench_rerank", result)


if __name__ == "__main__":
    main()
