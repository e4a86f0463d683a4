"""`pipeline`: corpus to served system in one resumable command (the stages are the pipeline package's)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from ..corpus import bundled_corpus_paths
from ..encoding.models import DEFAULT_MODEL
from ..pipeline import STAGES
from ..settings import LLM_BASE_URL_ENV, LLM_MODEL_ENV, llm_base_url_from_env, llm_model_from_env
from .app import app
from .options import (
    AugmentOpt,
    BatchOpt,
    BootstrapOpt,
    ClickGradeOpt,
    CorpusOpt,
    EpochsOpt,
    FusionOpt,
    LlmBaseUrlOpt,
    LlmModelOpt,
    LossOpt,
    LrOpt,
    MaxRowsOpt,
    MaxStepsOpt,
    NaturalShareOpt,
    NegOpt,
    PatienceOpt,
    PermutationsOpt,
    PlotsOpt,
    SkipInvalidOpt,
    SoupOpt,
    TrainingOptions,
    WarmupOpt,
    check_fusion,
    train_config,
)
from .output import fail, mode, out, reports_errors


def default_run_dir(corpus: list[Path] | None) -> Path:
    """`pipeline`'s run folder without --out: runs/NAME, NAME the first corpus file's name without its
    extension (runs/bundled for the bundled corpus), so runs of different corpora never share a folder."""
    if not corpus:
        return Path("runs/bundled")
    name = re.sub(r"[^\w.-]+", "-", Path(corpus[0]).stem).strip(".-")
    return Path("runs") / (name or "corpus")


def corpus_names(files: list[Path]) -> str:
    """How a message names the corpus files: by file name, or "the bundled corpus"."""
    return "the bundled corpus" if files == bundled_corpus_paths() else ", ".join(Path(f).name for f in files)


@app.command()
@reports_errors
def pipeline(
    corpus: CorpusOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Run folder. Default: runs/NAME, NAME the first corpus file's name without its extension "
            "(runs/bundled for the bundled corpus). A run folder of another corpus is replaced only with --force.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random step.")] = 42,
    base: Annotated[str, typer.Option(help="Base model.")] = DEFAULT_MODEL,
    epochs: EpochsOpt = 1.0,
    batch_size: BatchOpt = 32,
    lr: LrOpt = 8e-5,
    warmup: WarmupOpt = 0.1,
    hard_negatives: NegOpt = 1,
    max_rows: MaxRowsOpt = 3000,
    augment_keywords: AugmentOpt = 0,
    soup_keywords: SoupOpt = 0,
    max_steps: MaxStepsOpt = -1,
    loss: LossOpt = "mnrl",
    early_stopping: PatienceOpt = 0,
    natural_share: NaturalShareOpt = 0.75,
    click_positive_grade: ClickGradeOpt = 2,
    llm_base_url: LlmBaseUrlOpt = None,
    llm_model: LlmModelOpt = None,
    judged: Annotated[Path | None, typer.Option(help="Hand-judged JSONL query set for the second comparison.")] = None,
    fusion: FusionOpt = "corpus",
    feedback: Annotated[
        str | None,
        typer.Option(
            "--feedback",
            metavar="STORE",
            help="A feedback store (SQLite file or postgresql:// URL): its judgments join the golden set as the "
            "feedback family, split by time (the newest requests are tested on, the oldest trained on).",
        ),
    ] = None,
    feedback_judged: Annotated[
        list[Path] | None,
        typer.Option(
            "--feedback-judged",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="A judged-feedback JSONL (`feedback judgments` output, the owner's /judge page), added to the "
            "feedback family like --feedback's; repeatable.",
        ),
    ] = None,
    feedback_skip_unknown: Annotated[
        bool,
        typer.Option(
            "--feedback-skip-unknown",
            help="Leave out (and count) feedback judgments of prompts not in the corpus instead of failing.",
        ),
    ] = False,
    reference: Annotated[
        bool,
        typer.Option(
            "--reference/--no-reference",
            help="For a collection without natural-language queries: train with a reference collection's "
            "(replay) and choose the served system on its held-out genres too.",
        ),
    ] = True,
    reference_corpus: Annotated[
        list[Path] | None,
        typer.Option(help="The reference collection's corpus file(s) (default: the bundled corpus).", exists=True),
    ] = None,
    reference_queries: Annotated[
        Path | None,
        typer.Option(help="The reference's natural-query JSONL (default: the bundled natural queries).", exists=True),
    ] = None,
    until: Annotated[str | None, typer.Option(help=f"Stop after this stage: {', '.join(STAGES)}.")] = None,
    force: Annotated[bool, typer.Option(help="Rerun every stage.")] = False,
    bootstrap: BootstrapOpt = 2000,
    permutations: PermutationsOpt = 10000,
    plots: PlotsOpt = True,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Corpus -> queries -> split -> base evaluation -> fine-tune -> comparison -> report, resumable.

    The LLM endpoint defaults to PROMPT_RETRIEVER_LLM_BASE_URL and PROMPT_RETRIEVER_LLM_MODEL.
    """
    from ..pipeline import PipelineConfig, other_corpus_run, run_pipeline

    check_fusion(fusion)
    if not reference and (reference_corpus or reference_queries):
        fail("--no-reference conflicts with --reference-corpus/--reference-queries: give one or the other")
    llm_base_url = llm_base_url or llm_base_url_from_env()
    llm_model = llm_model or llm_model_from_env()
    if bool(llm_base_url) != bool(llm_model):
        fail(
            f"an LLM endpoint needs both --llm-base-url and --llm-model (or {LLM_BASE_URL_ENV} and "
            f"{LLM_MODEL_ENV}); give both, or neither"
        )
    files = corpus or bundled_corpus_paths()
    out_dir = out_dir or default_run_dir(corpus)
    if not force and (other := other_corpus_run(out_dir, files)):  # the pipeline's own stage record
        fail(
            f"{out_dir} holds a pipeline run of another corpus ({other}); give --out FOLDER for a run of "
            f"{corpus_names(files)}, or --force to replace that run"
        )
    train_cfg = train_config(TrainingOptions.of(locals()))
    cfg = PipelineConfig(
        corpus=corpus,
        out=out_dir,
        seed=seed,
        base=base,
        skip_invalid=skip_invalid,
        train=train_cfg,
        soup_keywords=soup_keywords,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        judged=judged,
        feedback=feedback,
        feedback_judged=list(feedback_judged or []),
        feedback_skip_unknown=feedback_skip_unknown,
        reference=reference,
        reference_corpus=reference_corpus,
        reference_queries=reference_queries,
        until=until,
        force=force,
        n_bootstrap=bootstrap,
        n_permutations=permutations,
        plots=plots,
        fusion=fusion,
    )
    run_pipeline(cfg, out, progress=not mode.quiet)
