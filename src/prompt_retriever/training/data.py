"""Training rows: (query, positive prompt, hard negatives) from the train split only.

- Rows come only from train queries and train prompts: a held-out (dev/test) prompt never appears in
  training, not even as a negative (`assert_no_heldout_in_training` checks it before every run).
- Hard negatives are mined with the base model among train prompts, excluding every prompt the qrels
  mark relevant to the query and any prompt scoring above (1 - relative_margin) x the positive's score.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..encoding.encoder import Encoder, prompt_document
from ..errors import InputError, LeakageError
from ..golden.feedback_family import FEEDBACK_KIND, FEEDBACK_KINDS
from ..golden.goldenset import GoldenSet
from .config import TrainConfig


@dataclass
class TrainRow:
    query_id: str
    query: str
    positive_id: str
    negative_ids: list[str] = field(default_factory=list)


def training_rows(gs: GoldenSet, cfg: TrainConfig) -> list[TrainRow]:
    """Every (query, positive) row from train queries and train prompts; at most N positives per query,
    preferring the highest grade, in seeded order; a request judged from clicks only with prompts of grade
    `click_positive_grade` or better. `select_rows` applies the `max_rows` budget."""
    if "train" not in gs.splits:
        raise InputError("the golden set has no train split; run `queries split` first")
    split_of = gs.prompt_split()
    rng = random.Random(cfg.seed)
    rows = []
    for q in gs.split_queries("train"):
        low = cfg.click_positive_grade if q.kind == FEEDBACK_KIND else 1  # clicks: only the grades they are sure of
        rels = [(pid, g) for pid, g in gs.qrels[q.id].items() if g >= low and split_of.get(pid, "train") == "train"]
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


def is_natural_kind(kind: str) -> bool:
    """Whether rows of a query kind count as natural-language for `natural_share`: the natural queries
    (`natural`, `natural_judged`) and writers' own requests from feedback (`feedback`, `owner_judged`).

    >>> is_natural_kind("owner_judged"), is_natural_kind("keywords")
    (True, False)
    """
    return kind.startswith("natural") or kind in FEEDBACK_KINDS


def select_rows(rows: list[TrainRow], cfg: TrainConfig, kinds: dict[str, str] | None = None) -> list[TrainRow]:
    """Apply the `max_rows` budget: a seeded uniform sample, kept in order. With `cfg.natural_share` and the
    query kinds, that share of the budget is drawn from natural-language queries (`is_natural_kind`) and the
    rest from the others (each a seeded uniform sample; a side with too few rows gives its unused budget to
    the other).

    (Spending the budget on rows the base model gets wrong first was tried and measured worse: those
    are mostly genre/theme template rows, and the model over-fitted to them, losing keyword and
    natural-language quality.)
    """
    if cfg.max_rows is None or len(rows) <= cfg.max_rows:
        return rows
    rng = random.Random(cfg.seed)
    if cfg.natural_share is None or kinds is None:
        keep = sorted(rng.sample(range(len(rows)), cfg.max_rows))
        return [rows[i] for i in keep]
    natural = [i for i, r in enumerate(rows) if is_natural_kind(kinds.get(r.query_id, ""))]
    other = [i for i, r in enumerate(rows) if not is_natural_kind(kinds.get(r.query_id, ""))]
    n_nat = min(len(natural), round(cfg.max_rows * cfg.natural_share))
    n_other = min(len(other), cfg.max_rows - n_nat)
    n_nat = min(len(natural), cfg.max_rows - n_other)
    keep = sorted(rng.sample(natural, n_nat) + rng.sample(other, n_other))
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


def assert_no_heldout_in_training(rows: Sequence[TrainRow], gs: GoldenSet) -> None:
    """Raise LeakageError (an AssertionError) for a row from a non-train query or with a held-out prompt."""
    split_of = gs.prompt_split()
    train_q = set(gs.splits.get("train", []))
    for r in rows:
        if r.query_id not in train_q:
            raise LeakageError(f"training row from non-train query {r.query_id}")
        for pid in (r.positive_id, *r.negative_ids):
            if split_of.get(pid, "train") != "train":
                raise LeakageError(f"held-out prompt {pid} in training row of {r.query_id}")
