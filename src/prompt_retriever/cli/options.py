"""The options several commands share, defined once: their spelling, help and type.

Each is an `Annotated` type a command's parameter uses (`corpus: CorpusOpt = None`). The training options
of `train` and `pipeline` are here too, with `TrainingOptions`, the record `train_config` builds the
library's `TrainConfig` from. Hidden options are the old spellings that keep working (`Deprecated*`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ..training import TrainConfig

CorpusOpt = Annotated[
    list[Path] | None,
    typer.Option("--corpus", "-c", help="Corpus file(s): tagged .txt, .csv or .jsonl. Default: the bundled corpus."),
]
RunOpt = Annotated[
    Path | None,
    typer.Option("--run", help="A pipeline run folder: serve the system it chose (system.json), as measured."),
]
SYSTEM_KINDS = "dense | bm25 | hybrid | hybrid-rrf | hybrid-adaptive"
SystemOpt = Annotated[
    str | None,
    typer.Option(
        "--system",
        "-s",
        help=f"Build a system by hand: KIND[:MODEL], KIND one of {SYSTEM_KINDS} (default dense; MODEL "
        "default --model). Fusion weights are untuned (0.5) here; --run serves the weights a run tuned on dev.",
    ),
]
ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="Model name (bundled, local folder or hub id); of a system without one.")
]
IndexOpt = Annotated[Path | None, typer.Option("--index", help="A saved index folder.")]
BACKENDS = "torch | onnx | onnx-int8"
BackendOpt = Annotated[
    str,
    typer.Option(
        help=f"Inference backend: {BACKENDS} (ONNX Runtime, exported locally; int8 is the fastest "
        "on CPU). An index remembers its backend; queries must use the same one.",
    ),
]
FusionOpt = Annotated[
    str,
    typer.Option(
        "--fusion",
        metavar="FUSION",
        help="What the weighted hybrids fuse: corpus (every prompt, min-max over the whole corpus) or "
        "candidates (only each side's top 50, still normalised over the whole corpus): the system an engine "
        "(--engine edge) answers in one round at any size, measured that way. See docs/engines.md.",
    ),
]


def check_fusion(fusion: str) -> str:
    """`fusion` when it is one of `search.spec.FUSIONS`, else an InputError (the commands' one-line error,
    exit 2)."""
    from ..errors import InputError
    from ..search.spec import FUSIONS

    if fusion not in FUSIONS:
        raise InputError(f"--fusion {fusion!r}: use one of {', '.join(FUSIONS)}")
    return fusion


ENGINES_HELP = "auto | exact | edge | qdrant"
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help=f"Where searches run: {ENGINES_HELP}. exact: in process over every prompt; edge: a Qdrant Edge "
        "index (HNSW, BM25 as sparse vectors) kept beside the index folder; auto: edge for a dense system of "
        "10,000 prompts or more and for a hybrid fusing candidates (pipeline --fusion candidates) of 100,000 or "
        "more, else exact; qdrant: a Qdrant server (serve --qdrant-url). See docs/engines.md.",
    ),
]
AllowDownloadOpt = Annotated[
    bool, typer.Option("--allow-download", help="Allow fetching models from the Hugging Face hub.")
]
SkipInvalidOpt = Annotated[
    bool,
    typer.Option("--skip-invalid", help="Load the valid lines of a corpus with errors (still reported)."),
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="List every repair; by default the first few of each kind and a count."),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Write into an --out folder that exists and holds files this command did not make (files of the "
        "same names are overwritten, the others are left alone).",
    ),
]
ForceReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace an --out folder that exists and is not a model this tool made: EVERYTHING in it is "
        "deleted. `.`, its parents, the home folder and / are never replaced, even with --force.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]

# The LLM endpoint, one spelling for every command that talks to one.
LlmBaseUrlOpt = Annotated[
    str | None,
    typer.Option("--llm-base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1."),
]
LlmModelOpt = Annotated[str | None, typer.Option("--llm-model", help="Model name at the --llm-base-url endpoint.")]

# Evaluation statistics and reports.
BootstrapOpt = Annotated[
    int, typer.Option(min=100, help="Bootstrap resamples for the confidence intervals (more: steadier, slower).")
]
PermutationsOpt = Annotated[
    int, typer.Option(min=100, help="Randomization-test resamples for the p-values (more: steadier, slower).")
]
PlotsOpt = Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG plots beside the report.")]

# ----------------------------------------------------------------------------- training (train, pipeline)

EpochsOpt = Annotated[float, typer.Option(min=0.01, help="Training epochs.")]
BatchOpt = Annotated[int, typer.Option(min=2, help="Batch size (in-batch negatives).")]
LrOpt = Annotated[float, typer.Option(help="Learning rate (AdamW).")]
WarmupOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of steps for linear warm-up.")]
NegOpt = Annotated[int, typer.Option(min=0, max=20, help="Hard negatives per training row.")]
MaxRowsOpt = Annotated[int, typer.Option(min=0, help="Seeded sample of training rows (0 = all); CPU budget.")]
AugmentOpt = Annotated[
    int,
    typer.Option(
        min=0,
        max=50,
        help="Extra keyword queries per train prompt (TF-IDF words), added to the train split only; 0 = none.",
    ),
]
SoupOpt = Annotated[
    int,
    typer.Option(
        min=0,
        max=50,
        help="Model soup: train the plain model and the same model with N extra keyword queries per train "
        "prompt, then average their weights (about twice the training time; 0 = off). The two models are "
        "kept in <out>.ingredients/ (pipeline: <run>/ingredients/) and reused when rerun with the same "
        "settings.",
    ),
]
MaxStepsOpt = Annotated[int, typer.Option(help="Stop after this many steps (overrides epochs; -1 = off).")]
LossOpt = Annotated[str, typer.Option(help="mnrl | cached-mnrl (large batches on little memory).")]
NaturalShareOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of the --max-rows budget drawn from natural-language queries (chosen on dev; a golden set "
        "without natural queries trains as before).",
    ),
]
PatienceOpt = Annotated[int, typer.Option(min=0, help="Early stopping after N evaluations without gain (0 = off).")]
ClickGradeOpt = Annotated[
    int,
    typer.Option(
        min=1,
        max=2,
        help="A writers' request judged from clicks trains only on prompts of this grade or better (2, chosen "
        "on a dev log: click-judged grade 1 is often wrong; the owner's judgments train on grade 1 too).",
    ),
]


@dataclass(frozen=True)
class TrainingOptions:
    """The training options shared by `train` and `pipeline`, by their option names."""

    base: str
    epochs: float
    batch_size: int
    lr: float
    warmup: float
    seed: int
    hard_negatives: int
    max_rows: int
    augment_keywords: int
    max_steps: int
    loss: str
    early_stopping: int
    soup_keywords: int = 0
    natural_share: float | None = 0.75
    click_positive_grade: int = 2

    @classmethod
    def of(cls, values: dict[str, object]) -> TrainingOptions:
        """The options out of a command's parameters (e.g. `locals()`), other parameters ignored."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in names})  # type: ignore[arg-type]


def train_config(opts: TrainingOptions) -> TrainConfig:
    """The library's TrainConfig of the training options.

    TrainConfig rejects an unknown loss; with `soup_keywords` the soup recipe is checked as well, so a bad
    combination fails before any work (as one-line errors, see `output.reports_errors`).
    """
    from ..training import TrainConfig, ingredient_configs

    cfg = TrainConfig(
        base=opts.base,
        epochs=opts.epochs,
        batch_size=opts.batch_size,
        learning_rate=opts.lr,
        warmup_ratio=opts.warmup,
        seed=opts.seed,
        hard_negatives=opts.hard_negatives,
        max_rows=opts.max_rows or None,
        keyword_augment=opts.augment_keywords,
        max_steps=opts.max_steps,
        loss=opts.loss,
        early_stopping_patience=opts.early_stopping or None,
        natural_share=opts.natural_share,
        click_positive_grade=opts.click_positive_grade,
    )
    if opts.soup_keywords:
        ingredient_configs(cfg, opts.soup_keywords)
    return cfg
