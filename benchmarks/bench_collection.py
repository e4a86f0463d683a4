"""A collection the project has never seen: leave-genres-out folds of the bundled corpus.

    python benchmarks/bench_collection.py                      # 3 folds of 9 genres, the default pipeline
    python benchmarks/bench_collection.py --fold 0             # one fold
    python benchmarks/bench_collection.py --no-reference       # the pipeline as it was: template queries only
    python benchmarks/bench_collection.py --natural-share 0.5  # a training mix to compare (decide on dev)

The bundled corpus's genres are shuffled with the seed and cut into folds. In each fold the held-out
genres' prompts are "the user's collection" (written to a tagged file, as a stranger would bring it) and
their judged natural-language queries, relevance restricted to those prompts, are the writers' requests.
The pipeline runs on that file the way it runs on any user's (`natural=False`: it knows nothing of the
collection's natural queries); the rest of the bundled data (the other genres' prompts and their natural
queries, written to files) is all it may use, as its reference collection.

Decisions are made on the dev side only: the pipeline's own dev split and the reference's held-out
genres (`system.json`'s `chosen_on`, recorded here per fold as `dev`). The test side, reported per fold
and pooled: the served system (`PromptRetriever.from_run`, what `serve --run` answers) against the base
model and BM25 on the collection's judged natural queries, and against BM25 on the run's template test
split; paired randomization tests, Holm-corrected over the pooled comparisons. Writes
`results/bench_collection[_TAG].json`; runs are kept under `--work` so a second call reuses finished
stages.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from _common import emit


def fold_genres(genres: list[str], folds: int, seed: int) -> list[list[str]]:
    order = sorted(genres)
    random.Random(seed).shuffle(order)
    return [sorted(order[i::folds]) for i in range(folds)]


def write_fold(work: Path, prompts, natural, held: set[str]) -> dict:
    """The fold's files: the collection, the reference corpus and the reference's natural queries."""
    from prompt_retriever.corpus import write_corpus
    from prompt_retriever.fileio import atomic_write_text

    work.mkdir(parents=True, exist_ok=True)
    mine = [p for p in prompts if p.genre in held]
    rest = [p for p in prompts if p.genre not in held]
    write_corpus(mine, work / "collection.txt")
    write_corpus(rest, work / "reference.txt")
    rest_ids = {p.id for p in rest}
    rows = []
    for q in natural:
        if q.prompt_id not in rest_ids:
            continue
        row = {"prompt_id": q.prompt_id, "query": q.text, "style": q.style}
        if q.relevant:
            row["relevant"] = {pid: g for pid, g in q.relevant.items() if pid in rest_ids}
        rows.append(json.dumps(row))
    atomic_write_text(work / "reference.jsonl", "\n".join(rows) + "\n")
    return {"collection": len(mine), "reference": len(rest), "reference_queries": len(rows)}


def requests_of(prompts, natural) -> tuple[list, dict]:
    """The collection's judged natural queries, relevance restricted to its prompts."""
    from prompt_retriever.golden.goldenset import Query, make_query_id

    ids = {p.id for p in prompts}
    queries, qrels = [], {}
    for q in natural:
        if q.relevant and q.prompt_id in ids:
            qid = make_query_id(q.kind, q.text)
            queries.append(Query(qid, q.text, q.kind, q.prompt_id))
            qrels[qid] = {pid: g for pid, g in q.relevant.items() if pid in ids}
    return queries, qrels


def score_fold(run: Path, natural) -> dict:
    """Per-query NDCG@10 of the served system, the base model and BM25 on the fold's two test sets."""
    from prompt_retriever.evaluation.choose import families
    from prompt_retriever.evaluation.metrics import per_query
    from prompt_retriever.golden.goldenset import GoldenSet
    from prompt_retriever.search.retriever import PromptRetriever, SearchRequest
    from prompt_retriever.search.systems import BM25System, DenseSystem

    gs = GoldenSet.load(run / "golden")
    served = PromptRetriever.from_run(run)
    others = {"base": DenseSystem("all-MiniLM-L6-v2", gs.corpus), "bm25": BM25System(gs.corpus)}
    requests, req_qrels = requests_of(gs.corpus, natural)
    sets = {"natural": (requests, req_qrels), "template": (families(gs, "test")["template"], gs.qrels)}
    out: dict[str, dict[str, list[float]]] = {}
    for name, (queries, qrels) in sets.items():
        wanted = {q.id: qrels[q.id] for q in queries}
        hits = served.search_requests([SearchRequest(q.text, k=10) for q in queries])
        ranked = zip(queries, hits, strict=True)
        runs = {"served": {q.id: {h.prompt.id: float(10 - h.rank) for h in hs} for q, hs in ranked}}
        pairs = [(q.id, q.text) for q in queries]
        runs |= {label: system.search(pairs, 10) for label, system in others.items()}
        out[name] = {k: [per_query(r, wanted, ["ndcg@10"])["ndcg@10"][q.id] for q in queries] for k, r in runs.items()}
    system = json.loads((run / "system.json").read_text())
    return {"scores": out, "served": system["label"], "name": system["name"], "dev": system["chosen_on"]}


def compare(scores: dict, plan: list[tuple[str, str]]) -> list[dict]:
    from prompt_retriever.evaluation.stats import bootstrap_ci, holm, paired_randomization_test

    pvalues = [paired_randomization_test(scores[s]["served"], scores[s][b]) for s, b in plan]
    rows = []
    for (s, b), p, p_holm in zip(plan, pvalues, holm(pvalues), strict=True):
        diff = bootstrap_ci([x - y for x, y in zip(scores[s]["served"], scores[s][b], strict=True)])
        rows.append(
            {"set": s, "vs": b, "diff": round(diff.mean, 4), "ci": [round(diff.lo, 4), round(diff.hi, 4)],
             "p": round(p, 4), "p_holm": round(p_holm, 4)}
        )  # fmt: skip
    return rows


def means(scores: dict) -> dict:
    return {
        s: {k: round(sum(v) / len(v), 4) for k, v in d.items()} | {"queries": len(d["served"])}
        for s, d in scores.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--fold", type=int, action="append", help="run only these folds (repeatable)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_collection"), help="where the fold runs live")
    ap.add_argument("--no-reference", action="store_true", help="run the pipeline without a reference collection")
    ap.add_argument("--natural-share", type=float, default=None, help="training mix (default: the pipeline's)")
    ap.add_argument("--max-rows", type=int, default=None, help="training rows (default: the pipeline's)")
    ap.add_argument("--tag", default="", help="suffix of the result file and the run folders")
    args = ap.parse_args()

    from rich.console import Console

    from prompt_retriever.corpus import bundled_corpus_paths, load_corpus
    from prompt_retriever.golden.natural import bundled_natural_path, read_natural_queries
    from prompt_retriever.pipeline import PipelineConfig, run_pipeline
    from prompt_retriever.training import TrainConfig

    prompts = load_corpus(bundled_corpus_paths())
    natural = read_natural_queries(bundled_natural_path())
    folds = fold_genres(sorted({p.genre for p in prompts}), args.folds, args.seed)
    tag = args.tag or ("no-reference" if args.no_reference else "")
    train = TrainConfig()
    if args.natural_share is not None:
        train.natural_share = args.natural_share
    if args.max_rows is not None:
        train.max_rows = args.max_rows or None
    results, pooled = [], {}
    for f in args.fold or range(args.folds):
        work = args.work / f"fold{f}"
        files = write_fold(work, prompts, natural, set(folds[f]))
        cfg = PipelineConfig(
            corpus=[work / "collection.txt"],
            out=work / ("run" + (f"-{tag}" if tag else "")),
            seed=args.seed,
            natural=False,  # the pipeline knows nothing of the collection's natural queries
            reference=not args.no_reference,
            reference_corpus=[work / "reference.txt"],
            reference_queries=work / "reference.jsonl",
            train=train,
            plots=False,
        )
        t0 = time.perf_counter()
        run_pipeline(cfg, Console(stderr=True))
        seconds = time.perf_counter() - t0
        fold = score_fold(cfg.out, natural)
        for s, d in fold["scores"].items():
            for k, v in d.items():
                pooled.setdefault(s, {}).setdefault(k, []).extend(v)
        results.append(
            {"fold": f, "genres": folds[f], **files, "pipeline_seconds": round(seconds, 1), "served": fold["served"],
             "system": fold["name"], "dev": fold["dev"], "means": means(fold["scores"]),
             "comparisons": compare(fold["scores"], [("natural", "base"), ("template", "bm25")])}
        )  # fmt: skip
    result = {
        "protocol": f"{args.folds} leave-genres-out folds of the bundled corpus, seed {args.seed}",
        "reference": not args.no_reference,
        "train": {"natural_share": train.natural_share, "max_rows": train.max_rows},
        "folds": results,
        "pooled": {"means": means(pooled), "comparisons": compare(pooled, [("natural", "base"), ("template", "bm25")])},
    }
    emit("bench_collection" + (f"_{tag}" if tag else ""), result)


if __name__ == "__main__":
    main()
