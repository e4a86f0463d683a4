"""The last stages: choosing the system the run serves (and writing it into the run), and the report.

Each stage is a function `stage_<name>(cfg, ctx)` returning its record, with `<name>_key(cfg, ctx)`, its
inputs, next to it (see `stages.PIPELINE`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..encoding.models import model_fingerprint
from ..evaluation.summary import ComparisonSummary, headline_numbers
from ..fileio import atomic_write_json, atomic_write_text
from ..progress import task
from ..search.retriever import system_label
from .config import Context, PipelineConfig
from .report import final_report
from .stages_data import reference_key
from .stages_models import fusion_key, primary_golden, reference_facts


def choose_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return (
        {
            "golden": ctx.records["split"]["fingerprint"],
            "base": model_fingerprint(cfg.base),
            "model": model_fingerprint(str(ctx.model_dir)),
            "systems": cfg.systems,
            "format": "system/3",
        }
        | reference_key(cfg, ctx)
        | fusion_key(cfg)
    )


def stage_choose(cfg: PipelineConfig, ctx: Context) -> dict:
    """Choose the system to serve on dev (mean NDCG@10 over the query families), measure it on test,
    and write it into the run: `index/` and `system.json`, which `search/serve --run` load."""
    with task("embedding", unit="texts", enabled=ctx.progress):  # one bar for the stage's encode calls
        return _choose(cfg, ctx)


def _choose(cfg: PipelineConfig, ctx: Context) -> dict:
    from ..evaluation.choose import choose_system, family_scores
    from ..evaluation.compare import comparison_plan
    from ..evaluation.metrics import evaluate
    from ..evaluation.systems import build_systems
    from ..search.retriever import PromptRetriever

    gs = ctx.golden
    model = str(ctx.model_dir)
    extras = list(dict.fromkeys(["bm25", *cfg.systems]))
    specs, names, _, _ = comparison_plan(cfg.base, model, extras)
    proxy = None
    if ctx.reference is None:
        systems = build_systems(
            specs, gs.corpus, dev=gs.dev_judged(), names=names, show_progress=ctx.progress, fusion=cfg.fusion
        )
    else:  # fusion weights tuned on the collection's dev queries and the reference's natural ones jointly
        from ..evaluation.choose import Proxy
        from ..evaluation.systems import tune_jointly

        ref = ctx.reference.proxy
        systems = build_systems(specs, gs.corpus, names=names, show_progress=ctx.progress, fusion=cfg.fusion)
        twins = build_systems(specs, ref.corpus, names=names, show_progress=ctx.progress, fusion=cfg.fusion)
        proxy = Proxy(twins, ref)
        tune_jointly(list(zip(systems, proxy.systems, strict=True)), gs.dev_judged(), ref.dev_judged())
    choice = choose_system(systems, gs, proxy=proxy, base=cfg.base)
    chosen = next(s for s in systems if s.name == choice.name)
    spec, used = chosen.servable()
    tuned = Path(used or "").name == ctx.model_dir.name
    short = cfg.base.rstrip("/").split("/")[-1]
    label = system_label(spec.kind, f"fine-tuned {short}" if tuned else f"{short} (base)")
    if spec.fuses_candidates:
        label += f" over each side's top {spec.depth} candidates"
    test_queries = primary_golden(gs).split_queries("test")  # the report's primary test split
    run = chosen.search([(q.id, q.text) for q in test_queries], 10)
    test_all = evaluate(run, {q.id: gs.qrels[q.id] for q in test_queries}, ["ndcg@10"])["ndcg@10"]
    info = {
        "label": label,
        "name": chosen.name,
        "chosen_on": {
            "split": "dev",
            "metric": "ndcg@10",
            "rule": "best mean over the query families with dev queries",
            "families": choice.families,
            "candidates": {n: {**v, "mean": choice.mean[n]} for n, v in choice.dev.items()},
            "excluded": choice.excluded,
            "base": cfg.base,
        },
        **({"reference": reference_facts(ctx)} if ctx.reference else {}),
        "dev_ndcg@10": choice.mean[chosen.name],
        "dev": choice.dev[chosen.name],
        "test_ndcg@10": test_all,
        "test": family_scores(chosen, gs, "test", judged_only=True),
    }
    retriever = PromptRetriever(used or cfg.base, system=spec, show_progress=ctx.progress).index(gs.corpus)
    retriever.save_run(ctx.out, info)
    return {
        "label": label,
        "name": chosen.name,
        "kind": spec.kind,
        **{k: info[k] for k in ("dev", "test")},
        "dev_ndcg@10": info["dev_ndcg@10"],
        "test_ndcg@10": test_all,
    }


def report_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {"summary": ctx.records["compare"], "train": ctx.records["train"], "choose": ctx.records["choose"]}


def stage_report(cfg: PipelineConfig, ctx: Context) -> dict:
    """REPORT.md and summary.json; the record is the headline (the lines printed at the end of a run)."""
    corpus, split, training, comparison = (ctx.records[name] for name in ("corpus", "split", "train", "compare"))
    summary = ComparisonSummary.from_json(comparison)
    chosen = json.loads((ctx.out / "system.json").read_text(encoding="utf-8"))
    atomic_write_text(ctx.out / "REPORT.md", final_report(cfg, corpus, split, training, summary, chosen))
    headline = headline_numbers(summary)
    headline["lines"].append(
        f"serving: {chosen['label']} (chosen on dev, mean NDCG@10 {chosen['dev_ndcg@10']:.3f}; "
        f"test NDCG@10 {chosen['test_ndcg@10']:.3f}): prompt-retriever serve --run {ctx.out}"
    )
    atomic_write_json(
        ctx.out / "summary.json",
        {
            "corpus": corpus,
            "split": split,
            "train": training,
            "compare": comparison,
            "system": ctx.records["choose"],
            "headline": headline,
        },
    )
    return headline
