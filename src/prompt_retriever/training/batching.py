"""Batches without false in-batch negatives.

MultipleNegativesRankingLoss treats every other row's positive and negatives in a batch as negatives of
a query, so `QrelsBatchSampler` never puts two rows with the same query in a batch, nor a row whose
positive or negatives are relevant to another row's query.

The only training module that imports sentence-transformers at import time (the sampler subclasses its
`DefaultBatchSampler`); `train` imports it when it trains.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence

from sentence_transformers.base.sampler import DefaultBatchSampler

from ..errors import InputError
from .data import TrainRow


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
