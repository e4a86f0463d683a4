"""The one-command pipeline: corpus -> queries -> split -> base evaluation -> fine-tune -> comparison -> report.

- `config`: `PipelineConfig` (a run's settings) and `Context` (what its stages share while it runs).
- `runner`: the stage cache: a `Stage` (key, outputs, work), the `Runner` that runs or skips it, the
  stage records' place (`stage_path`) and `other_corpus_run`.
- `stages`: the stage table `PIPELINE` (its names: `STAGES`) and `run_pipeline`; the stages themselves in
  `stages_data` (corpus, queries, LLM queries, split), `stages_models` (base evaluation, fine-tuning,
  comparison) and `stages_system` (the system to serve, the report).
- `report`: REPORT.md's prose (the verdict, the sections, the plots).

Every stage writes its outputs atomically and then a state file `stages/<name>.json` holding a hash of
its inputs: an interrupted run resumes at the first unfinished stage and a second run is fast.
"""

from ..evaluation.summary import headline_numbers
from .config import COMPARE_DIR, Context, PipelineConfig
from .report import final_report, measured_families, verdict
from .runner import Runner, Stage, StopPipeline, other_corpus_run, stage_path
from .stages import PIPELINE, STAGES, run_pipeline
from .stages_models import primary_golden

__all__ = [
    "COMPARE_DIR",
    "PIPELINE",
    "STAGES",
    "Context",
    "PipelineConfig",
    "Runner",
    "Stage",
    "StopPipeline",
    "final_report",
    "headline_numbers",
    "measured_families",
    "other_corpus_run",
    "primary_golden",
    "run_pipeline",
    "stage_path",
    "verdict",
]
