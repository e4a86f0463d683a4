"""Is a model soup better than its ingredients, and than BM25, on held-out prompts? One run, one BM25.

For each pair of fine-tunes (the plain one and the one with extra keyword queries, trained on the same
golden set), this averages their weights (`prompt_retriever.training.soup.make_soup`) and evaluates BM25, both
ingredients and the soup on the test split (per query kind too) and on the bundled hand-written
queries. p: paired randomization test of each model against BM25 on test NDCG@10; `p_holm_vs_bm25`
(soups only) is Holm-corrected over the soups of the run, the claims this benchmark tests.

The ingredients take 25-35 minutes each on 2 cores; train them first, e.g. for seed 7:

    prompt-retriever train --golden runs/bundled/golden --out models/plain-s7 --max-rows 0 --lr 5e-5 --seed 7
    prompt-retriever train --golden runs/bundled/golden --out models/kw2-s7 --max-rows 0 --lr 5e-5 --seed 7 \\
        --augment-keywords 2
    python benchmarks/bench_soup.py --golden runs/bundled/golden --pair models/plain-s7 models/kw2-s7 [--pair ...]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import emit

KINDS = ("keywords", "title", "genre_theme", "genre_keywords")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--golden", type=Path, default=Path("runs/bundled/golden"))
    ap.add_argument(
        "--pair",
        nargs=2,
        action="append",
        type=Path,
        required=True,
        metavar=("FIRST", "SECOND"),
        help="two fine-tunes to average (the recipe: plain, keywords; a control: two plain ones)",
    )
    ap.add_argument("--name", default="bench_soup", help="result file name under benchmarks/results/")
    args = ap.parse_args()

    import numpy as np

    from prompt_retriever.evaluation.metrics import per_query
    from prompt_retriever.evaluation.stats import holm, paired_randomization_test
    from prompt_retriever.evaluation.systems import BM25System, DenseSystem
    from prompt_retriever.golden.goldenset import GoldenSet, bundled_handwritten_path, load_judged_queries
    from prompt_retriever.training.soup import make_soup

    gs = GoldenSet.load(args.golden)
    hand = load_judged_queries(bundled_handwritten_path(), gs.corpus)
    test = gs.split_queries("test")
    kind = {q.id: q.kind for q in test}
    ids = [q.id for q in test]

    def by_kind(s: dict[str, dict[str, float]]) -> dict[str, float]:
        return {k: round(float(np.mean([s["test"][i] for i in ids if kind[i] == k])), 3) for k in KINDS}

    def scores(system) -> dict[str, dict[str, float]]:
        out = {}
        for name, qs, qrels in (("test", test, gs.qrels), ("hand", hand.queries, hand.qrels)):
            run = system.search([(q.id, q.text) for q in qs], 10)
            out[name] = per_query(run, {q.id: qrels[q.id] for q in qs}, ["ndcg@10"])["ndcg@10"]
        return out

    bm25 = scores(BM25System(gs.corpus))
    work = Path(tempfile.mkdtemp(prefix="bench-soup-"))
    models: list[tuple[str, str, Path]] = []  # (pair, role, folder)
    for n, (first, second) in enumerate(args.pair, 1):
        soup = make_soup([first, second], work / f"soup-{n}", gs=gs).output_dir  # checks golden set and split
        models += [(f"pair {n}", "first", first), (f"pair {n}", "second", second), (f"pair {n}", "soup", soup)]

    rows = []
    base_test = [bm25["test"][i] for i in ids]
    seen: dict[Path, dict] = {}
    for pair, role, folder in models:
        if folder.resolve() not in seen:  # an ingredient of several pairs is evaluated once
            seen[folder.resolve()] = scores(DenseSystem(str(folder), gs.corpus))
        s = seen[folder.resolve()]
        t = [s["test"][i] for i in ids]
        rows.append(
            {
                "pair": pair,
                "model": role,
                "folder": str(folder) if role != "soup" else "(their weight average)",
                "test_ndcg@10": round(float(np.mean(t)), 4),
                "vs_bm25": round(float(np.mean(t) - np.mean(base_test)), 4),
                "by_kind": by_kind(s),
                "hand_ndcg@10": round(float(np.mean(list(s["hand"].values()))), 4),
                "p_vs_bm25": round(paired_randomization_test(t, base_test), 4),
            }
        )
    shutil.rmtree(work, ignore_errors=True)
    soups = [r for r in rows if r["model"] == "soup"]
    for row, p in zip(soups, holm([r["p_vs_bm25"] for r in soups]), strict=True):
        row["p_holm_vs_bm25"] = round(p, 4)
    emit(
        args.name,
        {
            "golden": str(args.golden),
            "test_queries": len(ids),
            "bm25": {
                "test_ndcg@10": round(float(np.mean(base_test)), 4),
                "by_kind": by_kind(bm25),
                "hand_ndcg@10": round(float(np.mean(list(bm25["hand"].values()))), 4),
            },
            "models": rows,
        },
    )


if __name__ == "__main__":
    main()
