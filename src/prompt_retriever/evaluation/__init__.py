"""Evaluation: IR metrics, uncertainty, reports, base-vs-fine-tuned comparisons, the choice of the served system.

The retrieval systems themselves (dense, BM25 and the hybrids `hybrid`, `hybrid-rrf`, `hybrid-adaptive`)
and the fusion arithmetic live in `search` (`search.systems`, `search.fusion`), where serving uses them
too; they are re-exported here for convenience.

- `systems`: `build_systems` makes systems from specs; `tune_alpha` / `tune_adaptive` / `tune_jointly`
  choose the hybrids' fusion weights on dev only.
- `metrics`: trec_eval's metrics as small functions, by name in `METRICS` (`ndcg@10`-style names).
- `stats`: bootstrap CIs, paired randomization tests, Holm's correction.
- `evaluate`: `evaluate_systems`, systems x golden split -> `EvaluationReport`.
- `report`: `write_report` (report.json, report.md, plots, TREC runs).
- `compare`: `compare`, the base model vs a fine-tune (and BM25, hybrids) on the golden and a second set.
- `choose`: the system to serve, chosen on dev by mean NDCG@10 over the query families.
- `served`: a run's served system as one more system of an evaluation.
- `judge`: an optional LLM judge of context relevance.

Importing this package stays cheap: models, BM25 and plotting load when first used.
"""

from ..search.fusion import normalize, rrf, weighted_sum
from .compare import CompareResult, SystemNames, candidate_label, compare, summary_markdown
from .evaluate import COMPARE_METRICS, PRIMARY, EvaluationReport, SystemResult, evaluate_systems, query_genre
from .judge import Judge, judge_report
from .metrics import (
    DEFAULT_KS,
    DEFAULT_METRICS,
    METRICS,
    MetricFn,
    average_precision,
    context_precision,
    context_recall,
    hit,
    metric_names,
    mrr,
    ndcg,
    per_query,
    precision,
    r_precision,
    rank,
    recall,
)
from .report import report_dict, trec_run, write_report
from .stats import Comparison, Estimate, bootstrap_ci, holm, paired_randomization_test
from .systems import (
    AdaptiveFusionSystem,
    BM25System,
    DenseSystem,
    Retriever,
    RRFSystem,
    Run,
    System,
    WeightedFusionSystem,
    build_systems,
    tune_adaptive,
    tune_alpha,
    tune_jointly,
)

__all__ = [
    "COMPARE_METRICS",
    "DEFAULT_KS",
    "DEFAULT_METRICS",
    "METRICS",
    "PRIMARY",
    "AdaptiveFusionSystem",
    "BM25System",
    "CompareResult",
    "Comparison",
    "DenseSystem",
    "Estimate",
    "EvaluationReport",
    "Judge",
    "MetricFn",
    "RRFSystem",
    "Retriever",
    "Run",
    "System",
    "SystemNames",
    "SystemResult",
    "WeightedFusionSystem",
    "average_precision",
    "bootstrap_ci",
    "build_systems",
    "candidate_label",
    "compare",
    "context_precision",
    "context_recall",
    "evaluate_systems",
    "hit",
    "holm",
    "judge_report",
    "metric_names",
    "mrr",
    "ndcg",
    "normalize",
    "paired_randomization_test",
    "per_query",
    "precision",
    "query_genre",
    "r_precision",
    "rank",
    "recall",
    "report_dict",
    "rrf",
    "summary_markdown",
    "trec_run",
    "tune_adaptive",
    "tune_alpha",
    "tune_jointly",
    "weighted_sum",
    "write_report",
]
