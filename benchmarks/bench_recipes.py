"""Dev NDCG@10 by query family of fine-tuned models: how training recipes were compared (on dev only).

    prompt-retriever train --golden runs/bundled/golden --out M1 [recipe options]   # one per recipe
    python benchmarks/bench_recipes.py --golden runs/bundled/golden M1 [M2 ...] [--name NAME]

For each model: the dense model, the fixed-weight hybrid with BM25 and the query-adaptive hybrid (both
tuned on all dev queries, as the pipeline does), each scored on every dev family (template, natural)
and on the natural dev queries judged against the whole corpus; `mean` is the mean over the families,
the number the pipeline's `choose` stage ranks systems by. Each model's training manifest gives its
recipe and training seconds. Writes `results/bench_recipes[_NAME].json`. The test split is never read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import emit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="fine-tuned model folders (or model names)")
    ap.add_argument("--golden", type=Path, default=Path("runs/bundled/golden"), help="golden set folder")
    ap.add_argument("--name", default="", help="suffix of the result file")
    args = ap.parse_args()

    from prompt_retriever.evaluation.choose import family_scores
    from prompt_retriever.evaluation.systems import build_systems
    from prompt_retriever.golden import GoldenSet

    gs = GoldenSet.load(args.golden)
    rows = []
    for model in args.models:
        manifest_path = Path(model) / "training_manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        hp = manifest.get("hyperparameters", {})
        recipe = {k: hp.get(k) for k in ("epochs", "batch_size", "learning_rate", "hard_negatives", "max_rows")}
        rows_used = manifest.get("training_rows")
        train = {"steps": manifest.get("steps"), "seconds": manifest.get("seconds"), "rows": rows_used}
        row = {"model": str(model), "recipe": recipe, "train": train}
        systems = build_systems([model, f"hybrid:{model}", f"hybrid-adaptive:{model}"], gs.corpus, dev=gs.dev_judged())
        for system in systems:
            dev = family_scores(system, gs, "dev")
            judged = family_scores(system, gs, "dev", judged_only=True)
            row[system.kind] = {
                **{fam: round(v, 4) for fam, v in dev.items()},
                "mean": round(sum(dev.values()) / len(dev), 4),
                "natural_judged": round(judged.get("natural", 0.0), 4),
                "alpha": getattr(system, "alphas", None) or getattr(system, "alpha", None),
            }
        print(json.dumps(row), flush=True)
        rows.append(row)
    name = f"bench_recipes_{args.name}" if args.name else "bench_recipes"
    emit(name, {"golden": str(args.golden), "models": rows})


if __name__ == "__main__":
    main()
