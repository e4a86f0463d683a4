"""Fine-tune a sentence-transformers model on a golden set's train split.

- Training rows (query, positive prompt, hard negatives) come only from train queries and train
  prompts (`data.py`); in-batch negatives are never false negatives (`batching.py`).
- MultipleNegativesRankingLoss (or the cached variant for large batches), AdamW, linear warm-up over
  a fraction of the steps (`warmup_ratio`); the dev split picks the best checkpoint by its NDCG@10 (graded,
  the project's trec_eval-exact metric, ranked over the full corpus as the dense system ranks:
  `checkpoint_eval.py`), with optional early stopping.
- Output: a standard sentence-transformers folder plus README.md (model card), training_manifest.json
  and training_curves.png (`cards.py`), built in a scratch folder and renamed into place.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..encoding.encoder import Encoder, prompt_document
from ..encoding.models import load_model, model_fingerprint, resolve_model
from ..errors import InputError
from ..fileio import atomic_dir, atomic_write_json, atomic_write_text
from ..golden.augment import augment_keyword_queries
from ..golden.goldenset import GoldenSet
from ..progress import quiet_libraries, task
from .cards import model_card, write_training_curves
from .config import TrainConfig
from .data import (
    BaseScores,
    TrainRow,
    assert_no_heldout_in_training,
    mine_hard_negatives,
    select_rows,
    training_rows,
)

DEV_METRIC = "dev_ndcg@10"  # what `dev_evaluator` reports
BEST_METRIC = f"eval_{DEV_METRIC}"  # the same in the trainer's log, which picks the best checkpoint


@dataclass
class TrainResult:
    output_dir: Path
    rows: int
    steps: int
    seconds: float
    best_dev_ndcg: float | None
    base_dev_ndcg: float | None
    history: list[dict]


def train(
    gs: GoldenSet,
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    *,
    progress: bool = False,
    golden_dir: str | None = None,
) -> TrainResult:
    """`progress`: one bar for the training steps (`progress.task`); the libraries' own bars and the
    trainer's printed log dicts are off either way."""
    from sentence_transformers import SentenceTransformerTrainer  # imported before the libraries are quieted

    with quiet_libraries():
        return _train(SentenceTransformerTrainer, gs, out_dir, cfg or TrainConfig(), progress, golden_dir)


def _train(
    trainer_cls, gs: GoldenSet, out_dir: str | Path, cfg: TrainConfig, progress: bool, golden_dir: str | None
) -> TrainResult:
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    rows, relevant, train_gs = prepare_rows(gs, cfg)
    dataset = _dataset(rows, gs, cfg.template)
    model = fresh_base_model(cfg)
    loss = training_loss(model, cfg)
    evaluator = dev_evaluator(gs, cfg.template)
    base_dev = evaluator(load_model(cfg.base)) if evaluator else None  # the shared, untrained base model

    with atomic_dir(out_dir, "training") as staged:  # also removes scratch folders of a killed run
        trainer = trainer_cls(
            model=model,
            args=training_arguments(cfg, staged.work / "checkpoints", rows, relevant, evaluator),
            train_dataset=dataset,
            loss=loss,
            evaluator=evaluator,
            callbacks=training_callbacks(cfg, evaluator),
        )
        silence_log_printing(trainer)
        with task("training", unit="steps", enabled=progress) as bar:
            if bar.active:
                trainer.add_callback(progress_callback(bar))
            trainer.train()
        trainer.model.save(str(staged.result))
        result = TrainResult(
            Path(out_dir),
            len(rows),
            trainer.state.global_step,
            time.perf_counter() - t0,
            trainer.state.best_metric,
            base_dev.get(DEV_METRIC) if base_dev else None,
            [dict(h) for h in trainer.state.log_history],
        )
        write_model_folder(staged.result, gs, cfg, result, golden_dir, train_gs.manifest.get("augmentation"))
    return result


# ----------------------------------------------------------------------------- the steps of `train`


def seed_everything(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def prepare_rows(gs: GoldenSet, cfg: TrainConfig) -> tuple[list[TrainRow], dict[str, set[str]], GoldenSet]:
    """The training rows with their hard negatives, the relevant prompts of every query, and the golden
    set they come from (`gs` plus the keyword queries of `cfg.keyword_augment`, train split only)."""
    train_gs = augment_keyword_queries(gs, cfg.keyword_augment, seed=cfg.seed)
    rows = training_rows(train_gs, cfg)
    if not rows:
        raise InputError("no training rows: the train split has no query with a relevant train prompt")
    rows = select_rows(rows, cfg, {q.id: q.kind for q in train_gs.queries})
    base = BaseScores.compute(rows, train_gs, Encoder(cfg.base), cfg.template)
    rows = mine_hard_negatives(rows, train_gs, base, cfg)
    relevant = {qid: {pid for pid, g in rel.items() if g > 0} for qid, rel in train_gs.qrels.items()}
    assert_no_heldout_in_training(rows, train_gs)
    return rows, relevant, train_gs


def _dataset(rows: list[TrainRow], gs: GoldenSet, template: str):
    from datasets import Dataset

    prompts = gs.prompt_by_id
    text = {pid: prompt_document(p, template) for pid, p in prompts.items()}
    data: dict[str, list[str]] = {"anchor": [r.query for r in rows], "positive": [text[r.positive_id] for r in rows]}
    for i in range(len(rows[0].negative_ids) if rows else 0):
        data[f"negative_{i + 1}"] = [text[r.negative_ids[i]] for r in rows]
    return Dataset.from_dict(data)


def fresh_base_model(cfg: TrainConfig):
    """A new copy of the base model (training changes its weights; `load_model` returns a shared one)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model(cfg.base).location, device="cpu")
    if cfg.max_seq_length:
        model.max_seq_length = cfg.max_seq_length
    return model


def training_loss(model, cfg: TrainConfig):
    from sentence_transformers import losses

    if cfg.loss == "cached-mnrl":
        return losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=cfg.cached_mini_batch_size)
    return losses.MultipleNegativesRankingLoss(model)


def dev_evaluator(gs: GoldenSet, template: str, name: str = "dev"):
    """The checkpoint evaluator: graded NDCG@10 on `gs`'s dev split over the full corpus, as `evaluation`
    scores the dense system (`checkpoint_eval.DevNDCGEvaluator`, reporting `DEV_METRIC`); None when the
    dev split has no queries."""
    from .checkpoint_eval import DevNDCGEvaluator  # imports sentence-transformers

    return DevNDCGEvaluator.from_golden(gs, template, name=name)


def training_arguments(
    cfg: TrainConfig,
    checkpoints: Path,
    rows: list[TrainRow],
    relevant: dict[str, set[str]],
    evaluator,
):
    """The trainer's arguments: schedule, evaluation and checkpoints (under `checkpoints`), batch sampler.
    The trainer's tqdm bar is off: `train` shows its own (`progress_callback`)."""
    from sentence_transformers import SentenceTransformerTrainingArguments

    from .batching import batch_sampler_factory, plan_batches

    steps_per_epoch = len(plan_batches(rows, relevant, cfg.batch_size, cfg.seed))
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    eval_steps = max(1, steps_per_epoch // max(1, cfg.evals_per_epoch))
    if cfg.max_steps > 0:
        eval_steps = max(1, min(eval_steps, cfg.max_steps))
    return SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=math.ceil(cfg.warmup_ratio * total),
        weight_decay=cfg.weight_decay,
        optim="adamw_torch",
        lr_scheduler_type="linear",
        seed=cfg.seed,
        data_seed=cfg.seed,
        eval_strategy="steps" if evaluator else "no",
        eval_steps=eval_steps,
        save_strategy="steps" if evaluator else "no",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=BEST_METRIC if evaluator else None,
        greater_is_better=True,
        logging_steps=max(1, min(10, eval_steps)),
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        batch_sampler=batch_sampler_factory(rows, relevant),
    )


def training_callbacks(cfg: TrainConfig, evaluator) -> list:
    from transformers import EarlyStoppingCallback

    if cfg.early_stopping_patience and evaluator:
        return [EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)]
    return []


def silence_log_printing(trainer) -> None:
    """Stop the trainer printing its log dicts (`{'loss': ...}`); they stay in `trainer.state.log_history`."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def progress_callback(bar):
    """A TrainerCallback feeding `bar`: steps done of the total, the latest loss and dev NDCG@10."""
    from transformers import TrainerCallback

    class TrainingProgress(TrainerCallback):
        def __init__(self):
            self.info: dict[str, str] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            bar.update(total=state.max_steps, completed=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            bar.update(completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                self.info["loss"] = f"loss {float(logs['loss']):.3f}"
            if BEST_METRIC in logs:
                self.info["dev"] = f"dev NDCG@10 {float(logs[BEST_METRIC]):.3f}"
            bar.update(info=", ".join(self.info.values()))

    return TrainingProgress()


def write_model_folder(
    folder: Path,
    gs: GoldenSet,
    cfg: TrainConfig,
    result: TrainResult,
    golden_dir: str | None,
    augmentation: dict | None,
) -> None:
    """Complete a saved model folder: training_curves.png, training_manifest.json and README.md (model card)."""
    write_training_curves(result.history, folder / "training_curves.png", BEST_METRIC)
    manifest = training_manifest(gs, cfg, result, golden_dir, augmentation)
    atomic_write_json(folder / "training_manifest.json", manifest)
    atomic_write_text(folder / "README.md", model_card(cfg, manifest))


def training_manifest(
    gs: GoldenSet, cfg: TrainConfig, result: TrainResult, golden_dir: str | None, augmentation: dict | None = None
) -> dict:
    """`gs` is the golden set as loaded (its fingerprint identifies the data); `augmentation` what was added."""
    from ..fileio import versions

    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": cfg.base,
        "base_fingerprint": model_fingerprint(cfg.base),
        "golden": golden_dir,
        "golden_fingerprint": gs.fingerprint(),
        "corpus_fingerprint": gs.manifest.get("corpus_fingerprint"),
        "split": gs.manifest.get("split", {}) | {"prompts": None},
        "hyperparameters": asdict(cfg),
        "training_rows": result.rows,
        "augmentation": augmentation,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "dev": {"ndcg@10_base": result.base_dev_ndcg, "ndcg@10_best": result.best_dev_ndcg},
        "test": {},
        "versions": versions(),
        "data_rules": [
            "training rows come only from train-split queries and train-split prompts",
            "extra keyword queries (augmentation) are made from train prompts only and never repeat a golden query",
            "hard negatives exclude every prompt the qrels mark relevant to the query",
            "no batch holds two rows with the same query or a row relevant to another row's query",
        ],
    }
