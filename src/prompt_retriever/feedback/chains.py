"""Query chains: a writer who found nothing for one request and typed another, then took a prompt from
the second answer, tells what the first request wanted, even when that prompt never showed on its page.

Clicks only judge what a search showed, so a prompt ranked below the page for a query is never graded
relevant by the click model however much writers want it. Reformulations reach it (Radlinski and
Joachims, "Query Chains: Learning to Rank from Implicit Feedback", KDD 2005): a search of one client with
no satisfied action (no copy, use or thumbs up) followed, within `ClickModelConfig.chain_window_s`, by
another search of the same client for a different query is a *reformulated* search (one the next search
only extends or shortens was still being typed: the page searches as the writer types); the searches of an
unbroken run of such searches all chain to the prompts satisfied (copied, used, thumbed up) in the
search that ends it. For a (query, prompt) pair: `chains`, the reformulated searches of the query that
chained to the prompt, out of `reformulated`, the query's reformulated searches. A pair is chain-judged
grade 2 when it has at least `min_chains` chains and the lower bound at `confidence` of
`chains / reformulated` reaches `chain_at`; chains never lower a grade.

>>> from datetime import timedelta
>>> from .records import EventRecord, QueryRecord, utc
>>> t = utc(2026, 12, 8)
>>> log = ChainLog(ClickModelConfig(min_chains=1, chain_at=0.1))
>>> searches = [QueryRecord("a", t, "writer-1", "sad robot", ("p-1",), 10),
...             QueryRecord("b", t + timedelta(seconds=20), "writer-1", "robot who grieves", ("p-9",), 10)]
>>> _ = list(log.searches(searches))
>>> _ = list(log.events([EventRecord("b", t, "writer-1", "copy", "p-9", 1)]))
>>> log.estimates()[("sad robot", "p-9")]
ChainEstimate(chains=1, reformulated=1, grade=2)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from .clickmodel import ClickModelConfig, lower_bound
from .records import EventRecord, QueryRecord, as_utc, query_key


def typing_on(key: str, next_key: str) -> bool:
    """Whether a search followed by `next_key` was the same request still being typed (or typed again):
    the page searches as the writer types, so "haunted", "haunted light" and "haunted lighthouse" are one
    request, not two reformulations of it; nor is a search whose text the next one only shortens."""
    return next_key.startswith(key) or key.startswith(next_key)


@dataclass(frozen=True)
class ChainEstimate:
    """What reformulations say about one prompt for one query: `chains` of its `reformulated` searches
    chained to it; `grade` 2 when that is sure enough (`ClickModelConfig.chain_at`), else None."""

    chains: int
    reformulated: int
    grade: int | None

    def evidence(self) -> dict:
        return {"chains": self.chains, "reformulated": self.reformulated, "chain_grade": self.grade}


@dataclass
class _Search:
    key: str
    client: str
    at: datetime
    query_id: str
    shown: frozenset[str]


@dataclass
class ChainLog:
    """Collects what chains need while the click model reads the log: wrap the searches and the events in
    `searches()` and `events()` (each passes every record on, so the log is still read once), then call
    `estimates()`."""

    config: ClickModelConfig = field(default_factory=ClickModelConfig)
    _searches: dict[str, _Search] = field(default_factory=dict)
    _satisfied: dict[str, set[str]] = field(default_factory=dict)  # query_id -> prompts satisfied there

    def searches(self, queries: Iterable[QueryRecord]) -> Iterator[QueryRecord]:
        for q in queries:
            text = " ".join(q.user_query.split())
            if text and q.client_id and q.query_id not in self._searches:
                at, shown = as_utc(q.timestamp), frozenset(q.object_ids)
                self._searches[q.query_id] = _Search(query_key(text), q.client_id, at, q.query_id, shown)
            yield q

    def events(self, events: Iterable[EventRecord]) -> Iterator[EventRecord]:
        for e in events:
            search = self._searches.get(e.query_id)
            if self.config.weight(e.action_name) > 0 and search is not None and e.object_id in search.shown:
                self._satisfied.setdefault(e.query_id, set()).add(e.object_id)
            yield e

    def estimates(self) -> dict[tuple[str, str], ChainEstimate]:
        """(query key, prompt id) -> its chain estimate, for every pair with a chain; empty when
        `chain_window_s` is 0 (chains off)."""
        if not self.config.chain_window_s:
            return {}
        by_client: dict[str, list[_Search]] = {}
        for s in self._searches.values():
            by_client.setdefault(s.client, []).append(s)
        reformulated: dict[str, int] = {}
        chains: dict[tuple[str, str], int] = {}
        for rows in by_client.values():
            rows.sort(key=lambda r: (r.at, r.query_id))  # ties as the store reads them
            run: list[str] = []  # the key of each reformulated search since the last satisfied one
            for s, nxt in zip(rows, [*rows[1:], None], strict=True):
                satisfied = self._satisfied.get(s.query_id)
                if run and satisfied:
                    for key in run:  # each reformulated search chains once (as `reformulated` counts them)
                        if key != s.key:
                            for pid in satisfied:
                                chains[(key, pid)] = chains.get((key, pid), 0) + 1
                if satisfied:
                    run = []
                    continue
                follows = nxt is not None and (nxt.at - s.at).total_seconds() <= self.config.chain_window_s
                if follows and not typing_on(s.key, nxt.key):
                    reformulated[s.key] = reformulated.get(s.key, 0) + 1
                    run.append(s.key)
                elif not follows:  # the same query again, or still typing it, keeps the run going
                    run = []
        if not chains:
            return {}
        pairs = list(chains)
        hits = np.array([chains[p] for p in pairs], dtype=float)
        trials = np.array([reformulated[key] for key, _ in pairs], dtype=float)
        sure = lower_bound(hits, trials, self.config.confidence)
        out = {}
        for pair, n, low in zip(pairs, hits, sure, strict=True):
            grade = 2 if n >= self.config.min_chains and low >= self.config.chain_at else None
            out[pair] = ChainEstimate(int(n), reformulated[pair[0]], grade)
        return out
