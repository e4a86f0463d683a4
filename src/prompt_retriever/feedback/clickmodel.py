"""A position-based click model (PBM) over the feedback log: how attractive a prompt is for a query once a
writer has looked at it, with how often each rank is looked at estimated from the log itself.

    P(click on prompt d shown at rank r for query q) = theta_r * alpha_{q,d}

`theta_r` is the probability that a writer examines rank r (`theta_1 = 1`), `alpha_{q,d}` the probability
that they click d once examined. Both are fitted by EM (Chuklin, Markov and de Rijke, "Click Models for
Web Search", ch. 4; Wang et al., WSDM 2018); `theta` only from the (query, prompt) pairs shown at two or
more ranks, the only ones that tell examination apart from attractiveness. A click is a search in which
the writer opened, copied, used or gave a thumbs up to the result; a copy or a use also counts as
satisfied (weighted by `ClickModelConfig.action_weights`); each action counts once per result of a search.

>>> result = estimate(queries, events)                      # doctest: +SKIP
>>> result.theta[0]                                          # doctest: +SKIP
1.0
>>> result.pairs[("haunted lighthouse", "p-00042")].grade  # doctest: +SKIP
2
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ..errors import InputError
from .records import ACTIONS, EventRecord, QueryRecord, as_utc, query_key

CLICKS = frozenset({"open", "copy", "use", "thumbs_up"})  # what counts as a click on a result
DEFAULT_WEIGHTS = (("copy", 1.0), ("use", 1.0), ("thumbs_up", 0.5))
_EPS = 1e-12
_NO_ACTIONS: Counter = Counter()


@dataclass(frozen=True)
class ClickModelConfig:
    """How the model is fitted and graded. `min_impressions`: a pair shown fewer times gets no grade.
    `max_rank`: the deepest rank with its own `theta` (deeper ranks share it). EM stops after `iterations`
    or when no estimate moves more than `tolerance`. Grade 2 at `clear_click_at` attractiveness or
    `clear_satisfied_at` satisfied rate, grade 1 at `click_at` or `satisfied_at`, else 0; a pair whose
    ratings are more than `down_share` thumbs down is 0 whatever its clicks. With `lower_bound` (the
    default) the rates graded are their lower bounds at `confidence` given how often the pair was examined,
    so that one lucky click at a rank seldom looked at does not make a prompt relevant. `action_weights`: how much a
    search with that action counts as satisfied (a search counts at most 1); a dict is accepted.
    Query chains (`chains`): a search left unsatisfied and followed by the same client's search for another
    query within `chain_window_s` seconds (0: chains off) chains to what that search satisfied; a pair with
    `min_chains` chains whose share of the query's reformulated searches is at least `chain_at` (its lower
    bound at `confidence`) is grade 2."""

    min_impressions: int = 3
    max_rank: int = 20
    iterations: int = 1000
    tolerance: float = 1e-6
    click_at: float = 0.2
    clear_click_at: float = 0.5
    satisfied_at: float = 0.05
    clear_satisfied_at: float = 0.2
    down_share: float = 0.5
    lower_bound: bool = True  # grade by each rate's lower bound at `confidence` (Jeffreys), not its estimate
    confidence: float = 0.9  # chosen on a dev log of simulated writers (benchmarks/bench_feedback_loop.py)
    action_weights: tuple[tuple[str, float], ...] | Mapping[str, float] = DEFAULT_WEIGHTS  # a tuple once made
    chain_window_s: float = 600.0
    min_chains: int = 2
    chain_at: float = 0.2

    def __post_init__(self) -> None:
        weights = self.action_weights
        pairs = tuple(sorted(weights.items() if isinstance(weights, Mapping) else weights))
        object.__setattr__(self, "action_weights", pairs)
        for name, low in (("min_impressions", 1), ("max_rank", 1), ("iterations", 1), ("min_chains", 1)):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < low:
                raise InputError(f"{name} must be a whole number of at least {low}, not {getattr(self, name)!r}")
        if not 0.5 <= self.confidence < 1:
            raise InputError(f"confidence must be at least 0.5 and below 1, not {self.confidence!r}")
        if not self.tolerance > 0:
            raise InputError(f"tolerance must be above 0, not {self.tolerance!r}")
        if not self.chain_window_s >= 0:
            raise InputError(f"chain_window_s must be 0 (chains off) or more seconds, not {self.chain_window_s!r}")
        for name in ("click_at", "clear_click_at", "satisfied_at", "clear_satisfied_at", "down_share", "chain_at"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"{name} must be between 0 and 1, not {getattr(self, name)!r}")
        if self.click_at > self.clear_click_at or self.satisfied_at > self.clear_satisfied_at:
            raise InputError("a grade-1 threshold (click_at, satisfied_at) must not be above its grade-2 one")
        for action, weight in pairs:
            if action not in ACTIONS or action == "thumbs_down":
                allowed = ", ".join(a for a in ACTIONS if a != "thumbs_down")
                raise InputError(f"action_weights: {action!r} is not one of {allowed}")
            if not 0 <= weight <= 1:
                raise InputError(f"action_weights: {action} must weigh between 0 and 1, not {weight!r}")

    def weight(self, action: str) -> float:
        return dict(self.action_weights).get(action, 0.0)


@dataclass(frozen=True)
class QueryGroup:
    """The searches of one query, told apart by `query_key`: the most common spelling (whitespace
    collapsed; the earliest among equals), how many searches, the first and the latest."""

    key: str
    text: str
    searches: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class PairEstimate:
    """What the log says about one prompt for one query. Counts are of searches (an action repeated on a
    result of one search counts once); `clicks`: searches with an open, copy, use or thumbs up. `ctr`:
    clicks per impression. `score`: the model's attractiveness, P(click | examined) (the `ctr` when not
    corrected). `satisfied`: weighted copies, uses and thumbs up per examination. `grade`: None below
    `min_impressions`."""

    impressions: int
    mean_rank: float
    clicks: int
    opens: int
    copies: int
    uses: int
    thumbs_up: int
    thumbs_down: int
    ctr: float
    score: float
    satisfied: float
    grade: int | None

    def evidence(self) -> dict:
        """The estimate as JSON (rates rounded to 4 places, the mean rank to 2)."""
        out = {"impressions": self.impressions, "mean_rank": round(self.mean_rank, 2)}
        out |= {k: getattr(self, k) for k in ("opens", "copies", "uses", "thumbs_up", "thumbs_down", "clicks")}
        out |= {k: round(getattr(self, k), 4) for k in ("ctr", "score", "satisfied")}
        return out | {"grade": self.grade}


@dataclass(frozen=True, eq=False)
class ClickModelResult:
    """The fitted model. `theta[r-1]`: examination of rank r (`theta[0]` = 1; the last entry also covers
    deeper ranks; all 1 when not corrected), up to the deepest rank shown; `theta_support`: impressions per
    rank of the pairs shown at two or more ranks, what `theta` is estimated from (a rank without any takes
    the value of the rank above). `pairs`: (query key, prompt id) -> estimate, every pair shown; `groups`:
    query key -> its searches, in first-seen order. `events_ignored`: events of an unknown action, about a
    search not in the log or a prompt it did not answer."""

    theta: tuple[float, ...]
    theta_support: tuple[int, ...]
    pairs: Mapping[tuple[str, str], PairEstimate]
    groups: Mapping[str, QueryGroup]
    pairs_below_min: int
    searches: int
    events_used: int
    events_ignored: int
    iterations: int
    converged: bool
    corrected: bool


@dataclass
class _Log:
    """The log in counts: impressions and clicks per (pair, rank) cell, and per-pair action counts."""

    max_rank: int
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    cells: dict[tuple[int, int], int] = field(default_factory=dict)
    cell_pair: list[int] = field(default_factory=list)
    cell_rank: list[int] = field(default_factory=list)
    cell_n: list[int] = field(default_factory=list)
    cell_clicks: list[int] = field(default_factory=list)
    rank_sum: list[int] = field(default_factory=list)
    actions: dict[int, Counter] = field(default_factory=dict)  # only pairs acted on
    satisfied: list[float] = field(default_factory=list)

    def cell(self, pair: tuple[str, str], rank: int, *, add: bool) -> int:
        p = self.pairs.get(pair)
        if p is None:
            p = self.pairs[pair] = len(self.pairs)
            self.rank_sum.append(0)
            self.satisfied.append(0.0)
        key = (p, min(rank, self.max_rank) - 1)
        c = self.cells.get(key)
        if c is None:
            c = self.cells[key] = len(self.cell_n)
            self.cell_pair.append(p)
            self.cell_rank.append(key[1])
            self.cell_n.append(0)
            self.cell_clicks.append(0)
        if add:
            self.cell_n[c] += 1
            self.rank_sum[p] += rank
        return c


def _collect(queries: Iterable[QueryRecord], events: Iterable[EventRecord], config: ClickModelConfig):
    log = _Log(config.max_rank)
    spellings: dict[str, Counter] = {}
    seen: dict[str, list] = {}  # key -> [searches, first, last]
    answered: dict[str, tuple[str, dict[str, int]]] = {}  # query_id -> (key, prompt id -> its rank)
    for q in queries:
        text = " ".join(q.user_query.split())
        if not text or q.query_id in answered:
            continue
        key, t = query_key(text), as_utc(q.timestamp)
        spellings.setdefault(key, Counter())[text] += 1
        s = seen.setdefault(key, [0, t, t])
        s[0], s[1], s[2] = s[0] + 1, min(s[1], t), max(s[2], t)
        ranks: dict[str, int] = {}
        for rank, object_id in enumerate(q.object_ids, 1):
            ranks.setdefault(object_id, rank)  # a repeated id: its first rank, the others keep theirs
        answered[q.query_id] = (key, ranks)
        for object_id, rank in ranks.items():
            log.cell((key, object_id), rank, add=True)
    acted: dict[tuple[str, str], set[str]] = {}
    ignored = 0
    for e in events:
        search = answered.get(e.query_id)
        if e.action_name not in ACTIONS or search is None or e.object_id not in search[1]:
            ignored += 1
            continue
        acted.setdefault((e.query_id, e.object_id), set()).add(e.action_name)
    for (query_id, object_id), names in acted.items():
        key, ranks = answered[query_id]
        c = log.cell((key, object_id), ranks[object_id], add=False)  # the cell its impression was counted in
        p = log.cell_pair[c]
        log.cell_clicks[c] += bool(names & CLICKS)
        log.actions.setdefault(p, Counter()).update(names)
        log.satisfied[p] += min(1.0, sum(config.weight(a) for a in names))
    groups = {
        key: QueryGroup(key, spellings[key].most_common(1)[0][0], n, first, last)
        for key, (n, first, last) in sorted(seen.items(), key=lambda kv: (kv[1][1], kv[0]))
    }
    n_events = sum(len(names) for names in acted.values())
    return log, groups, len(answered), n_events, ignored


def fit_pbm(
    pair: np.ndarray,
    rank: np.ndarray,
    n: np.ndarray,
    clicks: np.ndarray,
    informative: np.ndarray,
    config: ClickModelConfig,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """EM for the PBM over cells (`pair` index, 0-based `rank`, `n` impressions, `clicks`); `theta` is
    updated from the cells where `informative` only, `theta[0]` stays 1. (theta, alpha, iterations,
    converged)."""
    n_pairs, n_ranks = int(pair.max(initial=-1)) + 1, int(rank.max(initial=-1)) + 1
    shown = np.bincount(pair, n, n_pairs)
    support = np.bincount(rank[informative], n[informative], n_ranks)
    theta = 1.0 / np.arange(1, n_ranks + 1)
    alpha = np.full(n_pairs, 0.5)
    unclicked = n - clicks
    for it in range(1, config.iterations + 1):
        t, a = theta[rank], alpha[pair]
        denom = np.maximum(1.0 - t * a, _EPS)
        examined = clicks + unclicked * t * (1.0 - a) / denom  # E[examined], E[attracted] per cell
        attracted = clicks + unclicked * (1.0 - t) * a / denom
        new_alpha = np.bincount(pair, attracted, n_pairs) / np.maximum(shown, _EPS)
        num = np.bincount(rank[informative], examined[informative], n_ranks)
        new_theta = np.ones(n_ranks)
        for r in range(1, n_ranks):
            new_theta[r] = num[r] / support[r] if support[r] > 0 else new_theta[r - 1]
        moved = max(np.abs(new_alpha - alpha).max(initial=0.0), np.abs(new_theta - theta).max(initial=0.0))
        theta, alpha = new_theta, new_alpha
        if moved < config.tolerance:
            return theta, alpha, it, True
    return theta, alpha, config.iterations, False


def lower_bound(successes: np.ndarray, trials: np.ndarray, confidence: float) -> np.ndarray:
    """The one-sided lower bound at `confidence` of each rate `successes / trials` (Jeffreys interval:
    Beta(s + 1/2, t - s + 1/2)); trials may be fractional (expected examinations)."""
    from scipy.stats import beta

    s = np.minimum(np.maximum(successes, 0.0), trials)
    return np.nan_to_num(beta.ppf(1.0 - confidence, s + 0.5, trials - s + 0.5))


def _grade(score: float, satisfied: float, thumbs_up: int, thumbs_down: int, config: ClickModelConfig) -> int:
    if thumbs_down and thumbs_down > config.down_share * (thumbs_up + thumbs_down):
        return 0
    if score >= config.clear_click_at or satisfied >= config.clear_satisfied_at:
        return 2
    if score >= config.click_at or satisfied >= config.satisfied_at:
        return 1
    return 0


def estimate(
    queries: Iterable[QueryRecord],
    events: Iterable[EventRecord],
    config: ClickModelConfig = ClickModelConfig(),
    *,
    correct_bias: bool = True,
) -> ClickModelResult:
    """Fit the model to a log (its searches and the events about them, each read once) and grade every
    pair; `correct_bias=False`: no model, plain clicks per impression (`theta` all 1)."""
    log, groups, n_searches, n_events, ignored = _collect(queries, events, config)
    pair, rank = np.array(log.cell_pair, dtype=np.int64), np.array(log.cell_rank, dtype=np.int64)
    n, clicks = np.array(log.cell_n, dtype=float), np.array(log.cell_clicks, dtype=float)
    n_pairs, n_ranks = len(log.pairs), int(rank.max(initial=0)) + 1
    shown = np.bincount(pair, n, n_pairs)
    informative = (np.bincount(pair, minlength=n_pairs)[pair] >= 2) & (shown[pair] >= config.min_impressions)
    support = np.bincount(rank[informative], n[informative], n_ranks)
    if correct_bias and n_pairs:
        theta, alpha, iterations, converged = fit_pbm(pair, rank, n, clicks, informative, config)
    else:
        theta, iterations, converged = np.ones(n_ranks), 0, True
        alpha = np.bincount(pair, clicks, n_pairs) / np.maximum(shown, _EPS)
    exams = np.bincount(pair, n * theta[rank], n_pairs)
    n_clicks = np.bincount(pair, clicks, n_pairs)
    sat = np.array(log.satisfied, dtype=float)
    if config.lower_bound:  # few examinations say little: grade by what the evidence is sure of
        alpha_low = lower_bound(np.minimum(alpha, 1.0) * exams, exams, config.confidence)
        sat_low = lower_bound(sat, exams, config.confidence)
    else:
        alpha_low, sat_low = np.minimum(alpha, 1.0), np.minimum(1.0, sat / np.maximum(exams, _EPS))
    pairs: dict[tuple[str, str], PairEstimate] = {}
    for (key, object_id), p in log.pairs.items():
        acts, impressions = log.actions.get(p, _NO_ACTIONS), int(shown[p])
        score = float(min(1.0, alpha[p]))
        satisfied = float(min(1.0, sat[p] / max(exams[p], _EPS)))
        sure = (float(alpha_low[p]), float(sat_low[p]))
        graded = impressions >= config.min_impressions
        pairs[(key, object_id)] = PairEstimate(
            impressions=impressions,
            mean_rank=log.rank_sum[p] / impressions,
            clicks=int(n_clicks[p]),
            opens=acts["open"],
            copies=acts["copy"],
            uses=acts["use"],
            thumbs_up=acts["thumbs_up"],
            thumbs_down=acts["thumbs_down"],
            ctr=float(n_clicks[p] / impressions),
            score=score,
            satisfied=satisfied,
            grade=_grade(*sure, acts["thumbs_up"], acts["thumbs_down"], config) if graded else None,
        )
    below = sum(est.grade is None for est in pairs.values())
    return ClickModelResult(
        theta=tuple(float(x) for x in theta),
        theta_support=tuple(int(x) for x in support),
        pairs=pairs,
        groups=groups,
        pairs_below_min=below,
        searches=n_searches,
        events_used=n_events,
        events_ignored=ignored,
        iterations=iterations,
        converged=converged,
        corrected=correct_bias,
    )
