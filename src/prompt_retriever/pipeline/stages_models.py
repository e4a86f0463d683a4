"""The model stages: the base systems' evaluation, fine-tuning, and the comparison of base and fine-tune.

Each stage is a function `stage_<name>(cfg, ctx)` returning its record, with `<name>_key(cfg, ctx)`, its
inputs, next to it (see `stages.PIPELINE`).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, replace

from ..encoding.models import model_fingerprint
from ..golden.goldenset import GoldenSet
from ..progress import task
from .config import COMPARE_DIR, Context, PipelineConfig
from .stages_data import reference_key

# the query families a report shows beside the template test split (see evaluation/choose.py)
FAMILY_NAMES = {
    "natural": "natural-language queries of the test prompts, judged against the whole corpus",
    "feedback": "writers' newest requests from feedback (judged from clicks or by the owner), none trained on",
}


def base_eval_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {
        "golden": ctx.records["split"]["fingerprint"],
        "base": model_fingerprint(cfg.base),
        "systems": cfg.systems,
        "seed": cfg.seed,
        "boot": cfg.n_bootstrap,
        "perm": cfg.n_permutations,
    } | fusion_key(cfg)


def fusion_key(cfg: PipelineConfig) -> dict:
    """The hybrids' fusion as a stage input, only when not the default (runs made before it keep their key)."""
    return {"fusion": cfg.fusion} if cfg.fusion != "corpus" else {}


def stage_base_eval(cfg: PipelineConfig, ctx: Context) -> dict:
    from ..evaluation.evaluate import PRIMARY, evaluate_systems
    from ..evaluation.report import write_report
    from ..evaluation.systems import build_systems

    gs = ctx.golden
    specs = [
        "bm25",
        cfg.base,
        *[f"{x}:{cfg.base}" if x.startswith("hybrid") else x for x in cfg.systems if x != "bm25"],
    ]
    with task("embedding", unit="texts", enabled=ctx.progress):  # one bar for the stage's encode calls
        systems = build_systems(
            list(dict.fromkeys(specs)), gs.corpus, dev=gs.dev_judged(), show_progress=ctx.progress, fusion=cfg.fusion
        )
        rep = evaluate_systems(
            gs,
            systems,
            split="test",
            baseline="bm25",
            seed=cfg.seed,
            n_bootstrap=cfg.n_bootstrap,
            n_permutations=cfg.n_permutations,
            golden_dir=str(ctx.golden_dir),
        )
    write_report(rep, ctx.out / "reports" / "base", make_plots=cfg.plots)
    return {"ndcg@10": {x.name: x.estimates[PRIMARY].mean for x in rep.systems}}


def train_key(cfg: PipelineConfig, ctx: Context) -> dict:
    golden = ctx.records["split"]["fingerprint"]
    config = asdict(cfg.train)
    if not ctx.records["split"].get("feedback"):  # only a feedback family has click-judged rows: others keep their key
        config.pop("click_positive_grade")
    key = {"golden": golden, "config": config, "base": model_fingerprint(cfg.base)}
    key |= reference_key(cfg, ctx)  # runs without a reference keep their key
    return key | ({"soup_keywords": cfg.soup_keywords} if cfg.soup_keywords else {})  # old runs keep their key


def training_golden(ctx: Context) -> GoldenSet:
    """What the model trains on: the split golden set, plus the reference's replay part when there is one."""
    from ..golden.reference import merge_replay

    assert ctx.golden is not None
    return merge_replay(ctx.golden, ctx.reference.replay) if ctx.reference else ctx.golden


def reference_facts(ctx: Context) -> dict:
    """The reference collection as the report quotes it, its replay part counted as trained on: without
    the replay queries `merge_replay` leaves out because their text is one of the collection's held-out
    queries (their number kept beside it)."""
    assert ctx.reference is not None
    merged = training_golden(ctx).manifest["replay"]
    replay = {k: merged[k] for k in ("prompts", "queries", "left_out_as_held_out_texts")}
    return {**ctx.reference.describe(), "replay": replay}


def stage_train(cfg: PipelineConfig, ctx: Context) -> dict:
    from ..training import train, train_soup

    tcfg = replace(cfg.train)  # a copy: base and seed are the pipeline's (see PipelineConfig)
    if cfg.soup_keywords:
        soup = train_soup(
            training_golden(ctx),
            ctx.model_dir,
            tcfg,
            cfg.soup_keywords,
            ingredients_dir=ctx.out / "ingredients",
            reuse=not cfg.force,
            progress=ctx.progress,
            golden_dir=str(ctx.golden_dir),
            log=functools.partial(ctx.console.print, markup=False, emoji=False),
        )
        manifest = soup.manifest
        return {
            "rows": manifest["training_rows"],
            "steps": manifest["steps"],
            "seconds": manifest["seconds"],
            "dev_ndcg@10_base": manifest["dev"]["ndcg@10_base"],
            "dev_ndcg@10_best": soup.dev_ndcg,
            "soup": [i["path"] for i in manifest["soup"]["ingredients"]],
        }
    res = train(training_golden(ctx), ctx.model_dir, tcfg, progress=ctx.progress, golden_dir=str(ctx.golden_dir))
    return {
        **({"replay": reference_facts(ctx)["replay"]} if ctx.reference else {}),
        "rows": res.rows,
        "steps": res.steps,
        "seconds": round(res.seconds, 1),
        "dev_ndcg@10_base": res.base_dev_ndcg,
        "dev_ndcg@10_best": res.best_dev_ndcg,
    }


def compare_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {
        "golden": ctx.records["split"]["fingerprint"],
        "model": model_fingerprint(str(ctx.model_dir)),
        "second": ctx.judged.fingerprint() if ctx.judged else None,  # the key's name kept: old runs keep their key
        "families": "template+natural/1",
        "systems": cfg.systems,
        "seed": cfg.seed,
        "boot": cfg.n_bootstrap,
        "perm": cfg.n_permutations,
    } | fusion_key(cfg)


def family_name(gs: GoldenSet, family: str) -> str:
    """How the report names a test family: the natural family is either judged against the whole corpus
    (the bundled set) or written by an LLM for the test prompts (each judging its own prompt only)."""
    if family == "natural" and not any(q.kind == "natural_judged" for q in gs.split_queries("test")):
        return "natural-language queries an LLM wrote for the test prompts (each judges its own prompt)"
    return FAMILY_NAMES.get(family, family)


def stage_compare(cfg: PipelineConfig, ctx: Context) -> dict:
    """Base vs fine-tune (and the other systems) on the template test split, the hand-judged set and the
    split's further query families; the record is the comparison summary's JSON form."""
    from ..evaluation.choose import families, family_subset
    from ..evaluation.compare import compare
    from ..training import update_card_with_test

    test_families = families(ctx.golden, "test", judged_only=True)
    primary = primary_golden(ctx.golden)
    more_families = [
        (fam, family_name(ctx.golden, fam), family_subset(ctx.golden, "test", fam, judged_only=True))
        for fam in test_families
        if fam != "template" and len(test_families) > 1
    ]
    res = compare(
        primary,
        families=more_families,
        baseline=cfg.base,
        candidate=str(ctx.model_dir),
        extras=cfg.systems,
        split="test",
        second=ctx.judged,
        second_name=ctx.judged_name,
        out_dir=ctx.out / COMPARE_DIR,
        seed=cfg.seed,
        n_bootstrap=cfg.n_bootstrap,
        n_permutations=cfg.n_permutations,
        golden_dir=str(ctx.golden_dir),
        show_progress=ctx.progress,
        make_plots=cfg.plots,
        fusion=cfg.fusion,
    )
    cand = res.primary.system(res.names.candidate)
    update_card_with_test(
        ctx.model_dir, {m: cand.estimates[m].mean for m in ("ndcg@10", "mrr@10", "recall@10", "map@10", "precision@5")}
    )
    return res.summary.to_json()


def primary_golden(gs: GoldenSet) -> GoldenSet:
    """The golden set of the report's primary comparison: its test split holds the template family only
    when other families (natural-language, LLM) have test queries of their own, else every test query."""
    from ..evaluation.choose import families, family_subset

    return family_subset(gs, "test", "template") if len(families(gs, "test", judged_only=True)) > 1 else gs
