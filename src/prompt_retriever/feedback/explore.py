"""Exploration: a small, seeded share of searches answered with one adjacent pair of results swapped, so
that the feedback log holds the same prompt for the same query at two neighbouring ranks.

A position-based click model (`clickmodel`) can tell how often writers look at each rank apart from how
good the prompts there are only from prompts seen at more than one rank for the same query. A system that
always answers a query the same way never shows that, so without exploration the examination estimate is
flat and the click model falls back to plain click rates. One swap of neighbours (Joachims et al., WSDM
2017; Wang et al., WSDM 2018 use the same kind of intervention) costs a writer little: the two results
trade places, nothing leaves the page, and only `share` of the searches are touched.

A swap never shows a writer anything the system ranked below the page, so clicks can only confirm what
it already found: a query whose relevant prompts the system ranks 11th or lower never gets a click, and
never a judgment. With `depth` D > 0 an explored search instead shows one result drawn from the D below
the page (ranks k+1..k+D) at a random rank in the lower half of the answer, the results below it moved
down one and the last left out: the system's misses get their chance to be clicked.

>>> rng = Explorer(0.5, seed=7)
>>> rng.order(["a", "b", "c", "d"])                          # doctest: +SKIP
['a', 'c', 'b', 'd']
>>> insert_from_below(["a", "b", "c", "d", "e", "f"], k=4, below=1, at=2)
['a', 'b', 'f', 'c']
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from typing import TypeVar

from ..errors import InputError

T = TypeVar("T")


def swap_adjacent(items: Sequence[T], i: int) -> list[T]:
    """`items` with the items at `i` and `i + 1` (0-based) swapped."""
    if not 0 <= i < len(items) - 1:
        raise ValueError(f"no adjacent pair at {i} in {len(items)} items")
    out = list(items)
    out[i], out[i + 1] = out[i + 1], out[i]
    return out


def insert_from_below(items: Sequence[T], k: int, below: int, at: int) -> list[T]:
    """The first `k` of `items` with `items[k + below]` shown at 0-based position `at`: the ones from `at`
    on move down one and the k-th is left out."""
    if not (0 <= at < k and below >= 0 and k + below < len(items)):
        raise ValueError(f"no item {k + below} below the first {k} of {len(items)} to show at {at}")
    out = list(items[:k])
    out.insert(at, items[k + below])
    return out[:k]


class Explorer:
    """Decides, for each search in turn, whether it is explored (a `share` of them, drawn from a random
    generator seeded with `seed`) and how: which adjacent pair is swapped (uniform over the pairs shown;
    `depth` 0), or which of the `depth` results below the page is shown where (`from_below`).
    Thread-safe: the draws are taken under a lock, so one seed gives one sequence of decisions."""

    MAX_DEPTH = 50

    def __init__(self, share: float, *, seed: int = 0, depth: int = 0):
        if not 0.0 < share <= 1.0:
            raise InputError(f"the explored share must be in (0, 1], got {share}")
        if not 0 <= depth <= self.MAX_DEPTH:
            raise InputError(f"the exploration depth must be in 0..{self.MAX_DEPTH}, got {depth}")
        self.share = share
        self.seed = seed
        self.depth = depth
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.explored = 0

    def pair(self, n: int) -> int | None:
        """The 0-based first index of the pair to swap in an answer of `n` results, or None (not explored,
        or fewer than two results). The same two draws per search, explored or not and whatever `n`, so
        decisions do not depend on the answers' lengths."""
        with self._lock:
            explore = self._rng.random() < self.share
            i = int(self._rng.random() * max(1, n - 1))  # not randrange: its number of draws varies with n
            if explore and n >= 2:
                self.explored += 1
                return i
        return None

    def from_below(self, k: int) -> tuple[int, int] | None:
        """For `depth` > 0, decided before the search (which then asks for k + depth results): None (not
        explored) or (below, at): show result k + below (0-based, below < depth) at 0-based rank `at`, in
        the lower half of the k shown (never for k < 2: the top result always stays). Three draws per
        search whatever k, like `pair`."""
        with self._lock:
            explore = self._rng.random() < self.share
            below = int(self._rng.random() * max(1, self.depth))
            half = k // 2
            at = half + int(self._rng.random() * max(1, k - half))
            if explore and self.depth > 0 and k >= 2:  # k = 1 has no lower half: its one result stays
                self.explored += 1
                return below, at
        return None

    def nothing_below(self) -> None:
        """A search `from_below` chose had no result that deep (a filter, a small collection): it was
        answered as it is, so it is not counted in `explored`."""
        with self._lock:
            self.explored -= 1

    def order(self, items: Sequence[T]) -> list[T]:
        """`items` as this search answers them: unchanged, or with one adjacent pair swapped."""
        i = self.pair(len(items))
        return list(items) if i is None else swap_adjacent(items, i)
