"""A pipeline run's settings (`PipelineConfig`) and what its stages share while it runs (`Context`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from rich.console import Console

from ..encoding.models import DEFAULT_MODEL
from ..errors import InputError
from ..golden.goldenset import GoldenSet
from ..golden.reference import Reference
from ..training import TrainConfig

COMPARE_DIR = "reports/compare"  # the comparison's folder in a run
SHARED_WITH_TRAINING = ("base", "seed")  # set on the pipeline, copied into its training config


@dataclass(frozen=True)
class PipelineConfig:
    """The settings of one run. `base` and `seed` are the run's: the training config takes them (a
    `train` left at the training defaults is given them; one set to something else is refused)."""

    corpus: list[Path] | None = None  # None: the bundled corpus
    out: Path = Path("runs/bundled")
    seed: int = 42
    test: float = 0.2
    dev: float = 0.1
    base: str = DEFAULT_MODEL
    systems: tuple[str, ...] = ("bm25", "hybrid", "hybrid-adaptive")
    # what the weighted hybrids fuse (`search.spec.FUSIONS`): "candidates" chooses and measures the system
    # an engine serves in one round at any size (`serve --engine edge`), "corpus" fuses every prompt
    fusion: str = "corpus"
    train: TrainConfig = field(default_factory=TrainConfig)
    natural: bool = True  # add the natural-language queries of the corpus's prompts (see golden/natural.py)
    natural_queries: Path | None = None  # a natural-query file; None: the bundled one
    # A collection without natural-language queries of its own trains with a reference collection's (replay)
    # and chooses its system on the reference's held-out genres too (see golden/reference.py).
    reference: bool = True
    reference_corpus: list[Path] | None = None  # None: the bundled corpus
    reference_queries: Path | None = None  # None: the bundled natural queries
    soup_keywords: int = 0  # > 0: train a second model with this many extra keyword queries and average the two
    skip_invalid: bool = False
    llm_base_url: str | None = None
    llm_model: str | None = None
    judged: Path | None = None  # a second, hand-judged query set; default: the bundled one when it fits
    # Writers' feedback, a query family split by time (golden/feedback_family.py): a feedback store (SQLite
    # path or postgresql:// URL) whose judgments are computed into RUN/feedback/judged.jsonl, and judged files
    # (`prompt-retriever feedback judgments` exports, the owner's /judge page); both may be given.
    feedback: str | None = None
    feedback_judged: list[Path] = field(default_factory=list)
    feedback_skip_unknown: bool = False  # leave out (and count) judgments of prompts not in the corpus
    n_bootstrap: int = 2000
    n_permutations: int = 10000
    until: str | None = None  # stop after this stage
    force: bool = False
    plots: bool = True

    def __post_init__(self) -> None:
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        shared = {}
        for name in SHARED_WITH_TRAINING:
            mine, theirs = getattr(self, name), getattr(self.train, name)
            if theirs != mine and theirs != defaults[name]:
                raise InputError(
                    f"the pipeline's {name} is {mine!r} but its training config's is {theirs!r}: set {name} "
                    "on the pipeline only (the training config takes it)"
                )
            shared[name] = mine
        object.__setattr__(self, "train", replace(self.train, **shared))


@dataclass
class Context:
    """What the stages of one run share: its folder, the records of the stages so far, the golden sets."""

    out: Path
    console: Console
    files: list[Path]  # the corpus files
    records: dict[str, dict] = field(default_factory=dict)  # stage name -> the record it returned
    golden: GoldenSet | None = None  # the split golden set, loaded after the split stage
    judged: GoldenSet | None = None  # the comparison's hand-judged query set (None: none fits this corpus)
    judged_name: str | None = None
    reference: Reference | None = None  # the reference collection, when the golden set has no natural queries
    progress: bool = False  # progress bars (one per stage, on `console`)
    corpus_data: list[bytes] | None = None  # the corpus files' bytes, read once (`corpus_key`)
    feedback_text: str | None = None  # the feedback store's judgments as JSON lines, computed once (`split_key`)

    @property
    def queries_dir(self) -> Path:
        return self.out / "queries"

    @property
    def llm_dir(self) -> Path:
        return self.out / "queries-llm"

    @property
    def golden_dir(self) -> Path:
        return self.out / "golden"

    @property
    def model_dir(self) -> Path:
        return self.out / "model"

    @property
    def feedback_path(self) -> Path:
        """Where the feedback store's judgments are written for the split to read."""
        return self.out / "feedback" / "judged.jsonl"
