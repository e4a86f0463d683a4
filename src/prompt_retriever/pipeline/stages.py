"""The stage table (`PIPELINE`: each stage's name, key, outputs and work, in order) and `run_pipeline`.

Corpus -> queries -> LLM queries -> split -> base evaluation -> fine-tune -> comparison -> the system
to serve -> report. `STAGES` is the stage names, read from the table.
"""

from __future__ import annotations

import functools
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..corpus import bundled_corpus_paths
from ..errors import InputError
from ..fileio import check_out_dir
from ..progress import display
from .config import COMPARE_DIR, Context, PipelineConfig
from .runner import Runner, Stage, StopPipeline
from .stages_data import (
    corpus_key,
    llm_disabled,
    llm_queries_key,
    load_golden,
    queries_key,
    split_key,
    stage_corpus,
    stage_llm_queries,
    stage_queries,
    stage_split,
)
from .stages_models import base_eval_key, compare_key, stage_base_eval, stage_compare, stage_train, train_key
from .stages_system import choose_key, report_key, stage_choose, stage_report

PIPELINE = (
    Stage("corpus", corpus_key, ("corpus.jsonl",), stage_corpus),
    Stage("queries", queries_key, ("queries/manifest.json",), stage_queries),
    Stage("llm-queries", llm_queries_key, ("queries-llm/manifest.json",), stage_llm_queries, disabled=llm_disabled),
    Stage("split", split_key, ("golden/manifest.json", "golden/qrels/test.tsv"), stage_split, then=load_golden),
    Stage("base-eval", base_eval_key, ("reports/base/report.json",), stage_base_eval),
    Stage("train", train_key, ("model/training_manifest.json", "model/model.safetensors"), stage_train),
    Stage("compare", compare_key, (f"{COMPARE_DIR}/summary.json",), stage_compare),
    Stage("choose", choose_key, ("system.json", "index/manifest.json"), stage_choose),
    Stage("report", report_key, ("REPORT.md",), stage_report),
)
STAGES = tuple(stage.name for stage in PIPELINE)


def run_pipeline(cfg: PipelineConfig, console: Console | None = None, *, progress: bool = False) -> dict:
    """Run the stages in order. `progress`: a progress bar inside the slow stages (training steps, texts
    embedded), drawn on `console`; without it only the stage lines are printed."""
    console = console or Console(emoji=False)  # nothing printed is read as an emoji code
    out = Path(cfg.out)
    check_out_dir(out, "run", force=cfg.force)  # a non-empty folder that is not a run: refused unless --force
    out.mkdir(parents=True, exist_ok=True)
    if cfg.until is not None and cfg.until not in STAGES:
        raise InputError(f"unknown stage {cfg.until!r}; stages: {', '.join(STAGES)}")
    runner = Runner(out, console, STAGES, cfg.force, cfg.until)
    ctx = Context(out, console, [Path(p) for p in (cfg.corpus or bundled_corpus_paths())], progress=progress)
    try:
        with display(console):
            return _run(cfg, runner, ctx)
    except StopPipeline as stop:
        console.print(f"stopped after stage {stop.args[0]} (--until)")
        return {"stopped_after": stop.args[0], "ran": runner.ran, "skipped": runner.skipped}


def _run(cfg: PipelineConfig, runner: Runner, ctx: Context) -> dict:
    for stage in PIPELINE:
        reason = stage.disabled(cfg) if stage.disabled else None
        if reason:
            runner.disabled(stage.name, reason)
            continue
        outputs = [ctx.out / p for p in stage.outputs]
        ctx.records[stage.name] = runner.stage(
            stage.name, stage.key(cfg, ctx), outputs, functools.partial(stage.run, cfg, ctx)
        )
        if stage.then:
            stage.then(cfg, ctx)
    headline = ctx.records["report"]
    ctx.console.print(f"\n[bold]report:[/] {escape(str(ctx.out / 'REPORT.md'))}")
    for line in headline["lines"]:
        ctx.console.print("  " + line, soft_wrap=True, markup=False, emoji=False)  # names and paths, as written
    return {"ran": runner.ran, "skipped": runner.skipped, "headline": headline, "report": str(ctx.out / "REPORT.md")}
