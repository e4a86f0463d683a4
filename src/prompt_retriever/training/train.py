"""Fine-tune a sentence-transformers model on a golden set's train split.

- Training rows (query, positive prompt, hard negatives) come only from train queries and train
  prompts: a held-out (dev/test) prompt never appears in training, not even as a negative.
- Hard negatives are mined with the base model among train prompts, excluding every prompt the qrels
  mark relevant to the query and any prompt scoring above (1 - relative_margin) x the positive's score.
- In-batch negatives must not be false negatives: `QrelsBatchSampler` never puts two rows with the same
  query in a batch, nor a row whose positive or negatives are relevant to another row's query.
- MultipleNegativesRankingLoss (or the cached variant for large batches), AdamW, linear warm-up over
  10% of steps; the dev split (InformationRetrievalEvaluator over the full corpus) picks the best
  checkpoint by NDCG@10, with optional early stopping.
- Output: a standard sentence-transformers folder plus README.md (model card), training_manifest.json
  and training_curves.png, written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import functools
import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sentence_transformers.base.sampler import DefaultBatchSampler

from ..encoding.encoder import DEFAULT_TEMPLATE, DOCUMENT_TEMPLATES, Encoder, prompt_document
from ..encoding.models import DEFAULT_MODEL, load_model, model_fingerprint, resolve_model
from ..errors import InputError
from ..fileio import atomic_write_json, atomic_write_text
from ..golden.augment import augment_keyword_queries
from ..golden.goldenset import GoldenSet


@dataclass
class TrainConfig:
    base: str = DEFAULT_MODEL
    epochs: float = 3.0
    batch_size: int = 16
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    hard_negatives: int = 3
    relative_margin: float = 0.05
    max_positives_per_query: int = 1  # more rows per template query made the model over-fit them (measured)
    max_rows: int | None = 512  # training-row budget (CPU time), a seeded uniform sample; None = all
    keyword_augment: int = 0  # extra keyword queries per train prompt, train split only (see augment.py)
    loss: str = "mnrl"  # mnrl | cached-mnrl
    cached_mini_batch_size: int = 16
    early_stopping_patience: int | None = None
    evals_per_epoch: int = 1
    max_steps: int = -1  # > 0 overrides epochs (for quick runs)
    template: str = DEFAULT_TEMPLATE
    max_seq_length: int | None = None


@dataclass
class TrainRow:
    query_id: str
    query: str
    positive_id: str
    negative_ids: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- data


def training_rows(gs: GoldenSet, cfg: TrainConfig) -> list[TrainRow]:
    """Every (query, positive) row from train queries and train prompts; at most N positives per query,
    preferring the highest grade, in seeded order. `select_rows` applies the `max_rows` budget."""
    if "train" not in gs.splits:
        raise InputError("the golden set has no train split; run `queries split` first")
    split_of = gs.prompt_split()
    rng = random.Random(cfg.seed)
    rows = []
    for q in gs.split_queries("train"):
        rels = [(pid, g) for pid, g in gs.qrels[q.id].items() if g > 0 and split_of.get(pid, "train") == "train"]
        if not rels:
            continue
        rng.shuffle(rels)
        rels.sort(key=lambda pg: -pg[1])  # stable: random order within a grade
        rows.extend(TrainRow(q.id, q.text, pid) for pid, _ in rels[: cfg.max_positives_per_query])
    return rows


@dataclass
class BaseScores:
    """The base model's scores of every train query against every train prompt."""

    pool_ids: list[str]
    query_row: dict[str, int]
    scores: np.ndarray

    @classmethod
    def compute(cls, rows: Sequence[TrainRow], gs: GoldenSet, encoder: Encoder, template: str) -> BaseScores:
        split_of = gs.prompt_split()
        pool = [p for p in gs.corpus if split_of.get(p.id, "train") == "train"]
        doc = encoder.encode_documents([prompt_document(p, template) for p in pool])
        queries = sorted({r.query_id: r.query for r in rows}.items())
        qvec = encoder.encode_queries([t for _, t in queries])
        return cls([p.id for p in pool], {qid: i for i, (qid, _) in enumerate(queries)}, qvec @ doc.T)

    def row(self, query_id: str) -> np.ndarray:
        return self.scores[self.query_row[query_id]]


def select_rows(rows: list[TrainRow], cfg: TrainConfig) -> list[TrainRow]:
    """Apply the `max_rows` budget: a seeded uniform sample, kept in order.

    (Spending the budget on rows the base model gets wrong first was tried and measured worse: those
    are mostly genre/theme template rows, and the model over-fitted to them, losing keyword and
    natural-language quality.)
    """
    if cfg.max_rows is None or len(rows) <= cfg.max_rows:
        return rows
    keep = sorted(random.Random(cfg.seed).sample(range(len(rows)), cfg.max_rows))
    return [rows[i] for i in keep]


def mine_hard_negatives(rows: list[TrainRow], gs: GoldenSet, base: BaseScores, cfg: TrainConfig) -> list[TrainRow]:
    """Fill `negative_ids` with the base model's highest-scoring train prompts that are not relevant."""
    if cfg.hard_negatives <= 0 or not rows:
        return rows
    order_cache: dict[str, np.ndarray] = {}
    index = {pid: i for i, pid in enumerate(base.pool_ids)}
    for r in rows:
        s = base.row(r.query_id)
        if r.query_id not in order_cache:
            order_cache[r.query_id] = np.argsort(-s, kind="stable")
        ceiling = s[index[r.positive_id]] * (1 - cfg.relative_margin)
        relevant = {pid for pid, g in gs.qrels[r.query_id].items() if g > 0}
        negs = []
        for i in order_cache[r.query_id]:
            pid = base.pool_ids[i]
            if pid in relevant or s[i] > ceiling:
                continue
            negs.append(pid)
            if len(negs) == cfg.hard_negatives:
                break
        r.negative_ids = negs
    n = min(len(r.negative_ids) for r in rows)
    for r in rows:
        r.negative_ids = r.negative_ids[:n]  # every row needs the same number of columns
    return rows


# ----------------------------------------------------------------------------- batching


def compatible(a: TrainRow, b: TrainRow, relevant: dict[str, set[str]], query_key=str.casefold) -> bool:
    """Can rows a and b share a batch without giving either query a false negative?"""
    if query_key(a.query) == query_key(b.query):
        return False
    docs_a = {a.positive_id, *a.negative_ids}
    docs_b = {b.positive_id, *b.negative_ids}
    return not (docs_b & relevant[a.query_id]) and not (docs_a & relevant[b.query_id])


def plan_batches(
    rows: Sequence[TrainRow], relevant: dict[str, set[str]], batch_size: int, seed: int
) -> list[list[int]]:
    """Greedy, seeded batches in which every pair of rows is `compatible`. Every row is used once."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    batches: list[list[int]] = []
    remaining = order
    while remaining:
        batch: list[int] = []
        rest: list[int] = []
        for idx in remaining:
            if len(batch) < batch_size and all(compatible(rows[idx], rows[j], relevant) for j in batch):
                batch.append(idx)
            else:
                rest.append(idx)
        batches.append(batch)
        remaining = rest
    return batches


class QrelsBatchSampler(DefaultBatchSampler):
    """Batches without false in-batch negatives (see `compatible`); reshuffled every epoch.

    Module-level (and given its rows through `functools.partial`) so the trainer can pickle it.
    """

    def __init__(
        self,
        dataset,
        batch_size,
        drop_last,
        valid_label_columns=None,
        generator=None,
        seed=0,
        *,
        rows: Sequence[TrainRow],
        relevant: dict[str, set[str]],
    ):
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        if len(dataset) != len(rows):
            raise InputError("dataset and training rows differ in length")
        self.rows, self.relevant = rows, relevant
        self._plans: dict[int, list[list[int]]] = {}

    def _plan(self) -> list[list[int]]:
        if self.epoch not in self._plans:
            self._plans = {self.epoch: plan_batches(self.rows, self.relevant, self.batch_size, self.seed + self.epoch)}
        return self._plans[self.epoch]

    def __iter__(self):
        yield from self._plan()

    def __len__(self) -> int:
        return len(self._plan())


def batch_sampler_factory(rows: Sequence[TrainRow], relevant: dict[str, set[str]]) -> Callable:
    return functools.partial(QrelsBatchSampler, rows=rows, relevant=relevant)


# ----------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    output_dir: Path
    rows: int
    steps: int
    seconds: float
    best_dev_ndcg: float | None
    base_dev_ndcg: float | None
    history: list[dict]


def _dataset(rows: list[TrainRow], gs: GoldenSet, template: str):
    from datasets import Dataset

    prompts = gs.prompt_by_id
    text = {pid: prompt_document(p, template) for pid, p in prompts.items()}
    data: dict[str, list[str]] = {"anchor": [r.query for r in rows], "positive": [text[r.positive_id] for r in rows]}
    for i in range(len(rows[0].negative_ids) if rows else 0):
        data[f"negative_{i + 1}"] = [text[r.negative_ids[i]] for r in rows]
    return Dataset.from_dict(data)


def dev_evaluator(gs: GoldenSet, template: str, name: str = "dev"):
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    qs = gs.split_queries("dev")
    if not qs:
        return None
    return InformationRetrievalEvaluator(
        queries={q.id: q.text for q in qs},
        corpus={p.id: prompt_document(p, template) for p in gs.corpus},  # the full corpus
        relevant_docs={q.id: {pid for pid, g in gs.qrels[q.id].items() if g > 0} for q in qs},
        name=name,
        ndcg_at_k=[10],
        mrr_at_k=[10],
        accuracy_at_k=[1, 10],
        precision_recall_at_k=[10],
        map_at_k=[10],
        show_progress_bar=False,
        write_csv=False,
    )


def train(
    gs: GoldenSet,
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    *,
    progress: bool = True,
    golden_dir: str | None = None,
) -> TrainResult:
    import torch
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )
    from transformers import EarlyStoppingCallback

    cfg = cfg or TrainConfig()
    if cfg.loss not in ("mnrl", "cached-mnrl"):
        raise InputError(f"unknown loss {cfg.loss!r}: use mnrl or cached-mnrl")
    out = Path(out_dir)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)

    train_gs = augment_keyword_queries(gs, cfg.keyword_augment, seed=cfg.seed)
    rows = training_rows(train_gs, cfg)
    if not rows:
        raise InputError("no training rows: the train split has no query with a relevant train prompt")
    rows = select_rows(rows, cfg)
    base = BaseScores.compute(rows, train_gs, Encoder(cfg.base), cfg.template)
    rows = mine_hard_negatives(rows, train_gs, base, cfg)
    relevant = {qid: {pid for pid, g in rel.items() if g > 0} for qid, rel in train_gs.qrels.items()}
    assert_no_heldout_in_training(rows, train_gs)
    dataset = _dataset(rows, gs, cfg.template)

    resolved = resolve_model(cfg.base)
    model = SentenceTransformer(resolved.location, device="cpu")  # a fresh copy: training changes weights
    if cfg.max_seq_length:
        model.max_seq_length = cfg.max_seq_length
    if cfg.loss == "cached-mnrl":
        loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=cfg.cached_mini_batch_size)
    else:
        loss = losses.MultipleNegativesRankingLoss(model)

    sampler = batch_sampler_factory(rows, relevant)
    steps_per_epoch = len(plan_batches(rows, relevant, cfg.batch_size, cfg.seed))
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    eval_steps = max(1, steps_per_epoch // max(1, cfg.evals_per_epoch))
    if cfg.max_steps > 0:
        eval_steps = max(1, min(eval_steps, cfg.max_steps))
    evaluator = dev_evaluator(gs, cfg.template)
    base_dev = evaluator(load_model(cfg.base)) if evaluator else None  # the shared, untrained base model
    metric_key = "eval_dev_cosine_ndcg@10"

    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.training-*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.training-", dir=out.parent))
    try:
        args = SentenceTransformerTrainingArguments(
            output_dir=str(work / "checkpoints"),
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
            metric_for_best_model=metric_key if evaluator else None,
            greater_is_better=True,
            logging_steps=max(1, min(10, eval_steps)),
            report_to="none",
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=not progress,
            batch_sampler=sampler,
        )
        callbacks = []
        if cfg.early_stopping_patience and evaluator:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator, callbacks=callbacks
        )
        trainer.train()
        history = [dict(h) for h in trainer.state.log_history]
        best = trainer.state.best_metric
        final = work / "model"
        trainer.model.save(str(final))
        seconds = time.perf_counter() - t0
        result = TrainResult(
            out,
            len(rows),
            trainer.state.global_step,
            seconds,
            best,
            base_dev.get("dev_cosine_ndcg@10") if base_dev else None,
            history,
        )
        write_training_curves(history, final / "training_curves.png", metric_key)
        manifest = training_manifest(gs, cfg, result, golden_dir, train_gs.manifest.get("augmentation"))
        atomic_write_json(final / "training_manifest.json", manifest)
        atomic_write_text(final / "README.md", model_card(cfg, manifest))
        if out.exists():
            shutil.rmtree(out)
        final.rename(out)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def assert_no_heldout_in_training(rows: Sequence[TrainRow], gs: GoldenSet) -> None:
    split_of = gs.prompt_split()
    train_q = set(gs.splits.get("train", []))
    for r in rows:
        if r.query_id not in train_q:
            raise AssertionError(f"training row from non-train query {r.query_id}")
        for pid in (r.positive_id, *r.negative_ids):
            if split_of.get(pid, "train") != "train":
                raise AssertionError(f"held-out prompt {pid} in training row of {r.query_id}")


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


def _augment_sentence(aug: dict | None) -> str:
    if not aug:
        return ""
    return (
        f"The train split was augmented with {aug['added']} extra keyword queries ({aug['per_prompt']} per train "
        f"prompt, 2-3 of its top {aug['top']} TF-IDF words, seed {aug['seed']})."
    )


def card_number(v) -> str:
    """A metric as model cards show it (n/a when not measured)."""
    return f"{v:.4f}" if isinstance(v, (int, float)) else "n/a"


def card_test_rows(manifest: dict) -> str:
    """The rows of a model card's test-metrics table (a placeholder row before `compare` measured them)."""
    test = manifest.get("test") or {}
    return (
        "\n".join(f"| {k} | {v:.4f} |" for k, v in test.items() if isinstance(v, (int, float)))
        or "| (not measured yet) | |"
    )


def model_card(cfg: TrainConfig, manifest: dict) -> str:
    dev = manifest["dev"]
    test_lines = card_test_rows(manifest)
    return f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: {manifest["base_model"]}
tags: [sentence-transformers, prompt-retriever, creative-writing, retrieval]
---

# prompt-retriever fine-tune of {manifest["base_model"]}

A sentence-transformers model fine-tuned by [prompt-retriever](https://pypi.org/project/prompt-retriever/) to
search a library of creative-writing prompts: a writer types what they feel like writing about
("haunted lighthouse", "memoir about food") and the model ranks the prompts.

## Intended use

Semantic search over creative-writing prompts like those it was trained on (tagged with genre, theme
and title). Embed each prompt as `{DOCUMENT_TEMPLATES.get(cfg.template, cfg.template)}`
(template `{cfg.template}`) and the query as plain text, then rank by cosine similarity. Not evaluated
for other domains or languages than English.

## Data

Golden set `{manifest["golden"]}` (fingerprint `{manifest["golden_fingerprint"]}`), split by prompt:
{manifest["split"].get("test", "?")} of prompts held out for test and {manifest["split"].get("dev", "?")}
for dev (seed {manifest["split"].get("seed", "?")}). {manifest["training_rows"]} training rows (query, positive,
{cfg.hard_negatives} hard negatives) from train queries and train prompts only; held-out prompts never appear
in training. {_augment_sentence(manifest.get("augmentation"))}

## Training

| hyperparameter | value |
|---|---|
| loss | {"CachedMultipleNegativesRankingLoss" if cfg.loss == "cached-mnrl" else "MultipleNegativesRankingLoss"} |
| epochs | {cfg.epochs} |
| batch size | {cfg.batch_size} |
| learning rate | {cfg.learning_rate} |
| warm-up | {cfg.warmup_ratio:.0%} of steps, linear schedule |
| optimizer | AdamW (weight decay {cfg.weight_decay}) |
| hard negatives per row | {cfg.hard_negatives} (mined with the base model, relative margin {cfg.relative_margin}) |
| seed | {cfg.seed} |
| steps | {manifest["steps"]} ({manifest["seconds"]} s on CPU) |

The checkpoint with the best dev NDCG@10 (InformationRetrievalEvaluator over the full corpus) was kept.

## Results

| split | metric | base | fine-tuned |
|---|---|---|---|
| dev | NDCG@10 | {card_number(dev.get("ndcg@10_base"))} | {card_number(dev.get("ndcg@10_best"))} |

Test split (held-out prompts, never used for training or checkpoint selection):

| metric | value |
|---|---|
{test_lines}

Provenance: `training_manifest.json` (versions, fingerprints, hyperparameters).
"""


def write_training_curves(history: list[dict], path: Path, metric_key: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_write_bytes

    loss = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    dev = [(h["step"], h[metric_key]) for h in history if metric_key in h]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    if loss:
        ax1.plot(*zip(*loss, strict=True), color="tab:blue", label="training loss")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss", color="tab:blue")
    if dev:
        ax2 = ax1.twinx()
        ax2.plot(*zip(*dev, strict=True), color="tab:orange", marker="o", label="dev NDCG@10")
        ax2.set_ylabel("dev NDCG@10", color="tab:orange")
    ax1.set_title("Fine-tuning: loss and dev NDCG@10")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def update_card_with_test(
    model_dir: str | Path, test_metrics: dict[str, float], cfg: TrainConfig | None = None
) -> None:
    """Record held-out test metrics in the manifest and model card of a trained model folder."""
    d = Path(model_dir)
    manifest = json.loads((d / "training_manifest.json").read_text())
    manifest["test"] = test_metrics
    atomic_write_json(d / "training_manifest.json", manifest)
    if "soup" in manifest:
        from .soup import soup_card

        atomic_write_text(d / "README.md", soup_card(manifest))
        return
    hp = manifest["hyperparameters"]
    cfg = cfg or TrainConfig(**hp)
    atomic_write_text(d / "README.md", model_card(cfg, manifest))
