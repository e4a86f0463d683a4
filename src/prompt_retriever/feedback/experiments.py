"""Experiments between the current run and a candidate run on live traffic (`serve --candidate`): what is
kept per search (`ExperimentRecord`), how clicks are credited, and the report with its test and advice.

- interleave: a search in the experiment is answered by a team-draft interleaving of both runs' results
  (`feedback.interleave`). A click (open, copy or use; repeated events on one result of a search count
  once) credits the team of the result clicked. Per search the candidate wins when its team got more
  clicked results, loses when fewer, ties when as many and more than none; searches without a click are
  counted apart. Tested with the sign test: a two-sided exact binomial test of wins against losses,
  ties left out.
- ab: a search in the experiment is answered by the candidate alone, the others by the current run; per
  arm: searches, searches with a click, click-through rate, tested with Fisher's exact test (two-sided).

The advice: promote the candidate (it wins, p < `ALPHA`), keep the current run (it loses, p < `ALPHA`),
or no decision yet, with about how many more searches the observed rate would need to reach p < `ALPHA`
(where that rate is a tie, or nothing is decided yet: collect more).

>>> from datetime import UTC, datetime
>>> t = datetime(2026, 12, 7, tzinfo=UTC)
>>> x = ExperimentRecord("q-1", "run-b", "interleave", "interleaved", ("current", "candidate"), "run-a", "run-b", t)
>>> click = EventRecord("q-1", t, "client-01", "open", "p-2", 2)
>>> credit_interleaved([x], [click])
InterleaveCredit(searches=1, wins=1, losses=0, ties=0, no_clicks=0, candidate_clicks=1, current_clicks=0)
>>> build_report([x], [click]).recommendation.decision
'undecided'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Protocol

from ..errors import InputError
from .interleave import CANDIDATE, CURRENT
from .records import EventRecord, iso

MODES = ("interleave", "ab")
INTERLEAVED = "interleaved"  # the arm of a search answered by both runs, interleaved
ARMS = (CURRENT, CANDIDATE, INTERLEAVED)
CLICK_ACTIONS = frozenset({"open", "copy", "use"})  # what credits a result (thumbs are ratings, not clicks)
ALPHA = 0.05
_Z = 1.959963984540054  # the two-sided 5% point of the standard normal
PROMOTE, KEEP, UNDECIDED = "promote", "keep", "undecided"


@dataclass(frozen=True)
class ExperimentRecord:
    """One search answered during an experiment: which `experiment`, in which `mode`, the `arm` that
    answered (`current` or `candidate` in ab, `interleaved` in interleave), the team of each result in
    rank order (interleave only, else None), the runs compared, and when."""

    query_id: str
    experiment: str
    mode: str
    arm: str
    teams: tuple[str, ...] | None
    current_run: str
    candidate_run: str
    timestamp: datetime

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"experiment mode {self.mode!r}: one of {', '.join(MODES)} expected")
        interleaved = self.mode == "interleave"
        if (self.arm == INTERLEAVED) != interleaved or self.arm not in ARMS:
            raise ValueError(f"arm {self.arm!r} is not an arm of a {self.mode} experiment")
        if (self.teams is not None) != interleaved or any(t not in (CURRENT, CANDIDATE) for t in self.teams or ()):
            raise ValueError(f"teams {self.teams!r}: one per result for an interleaved search, none otherwise")


# ---------------------------------------------------------------------------------------------- credit
def clicked_results(events: Iterable[EventRecord]) -> dict[str, dict[str, int]]:
    """query_id -> {object_id: position} of the results clicked (`CLICK_ACTIONS`), each result once."""
    out: dict[str, dict[str, int]] = {}
    for e in events:
        if e.action_name in CLICK_ACTIONS:
            out.setdefault(e.query_id, {}).setdefault(e.object_id, e.position)
    return out


def interleaved_outcome(teams: Sequence[str], positions: Iterable[int]) -> str:
    """'win', 'loss' or 'tie' for the candidate, or 'no_click', given the teams of an interleaved answer
    and the 1-based positions of the distinct results clicked. ValueError for a position it did not answer.

    >>> interleaved_outcome(("current", "candidate", "current"), [2, 3]), interleaved_outcome(("current",), [])
    ('tie', 'no_click')
    """
    counts = {CURRENT: 0, CANDIDATE: 0}
    for p in set(positions):
        if not 1 <= p <= len(teams):
            raise ValueError(f"a click at position {p} of a search that answered {len(teams)} results")
        counts[teams[p - 1]] += 1
    if counts[CANDIDATE] > counts[CURRENT]:
        return "win"
    if counts[CANDIDATE] < counts[CURRENT]:
        return "loss"
    return "tie" if counts[CANDIDATE] else "no_click"


@dataclass(frozen=True)
class InterleaveCredit:
    """Interleaved searches and their outcomes for the candidate; the distinct results clicked per team."""

    searches: int
    wins: int
    losses: int
    ties: int
    no_clicks: int
    candidate_clicks: int
    current_clicks: int


def credit_interleaved(records: Iterable[ExperimentRecord], events: Iterable[EventRecord]) -> InterleaveCredit:
    """Credit the clicks of `events` to the teams of the interleaved searches `records` (see the module)."""
    clicked = clicked_results(events)
    outcomes = {"win": 0, "loss": 0, "tie": 0, "no_click": 0}
    per_team = {CURRENT: 0, CANDIDATE: 0}
    searches = 0
    for r in records:
        if r.teams is None:
            raise ValueError(f"search {r.query_id} of experiment {r.experiment} was not interleaved")
        positions = clicked.get(r.query_id, {}).values()
        outcomes[interleaved_outcome(r.teams, positions)] += 1
        for p in positions:
            per_team[r.teams[p - 1]] += 1
        searches += 1
    return InterleaveCredit(
        searches,
        outcomes["win"],
        outcomes["loss"],
        outcomes["tie"],
        outcomes["no_click"],
        per_team[CANDIDATE],
        per_team[CURRENT],
    )


@dataclass(frozen=True)
class ArmCredit:
    """One arm of an A/B experiment: its searches, those with at least one click, and their share."""

    arm: str
    searches: int
    clicked: int

    @property
    def ctr(self) -> float | None:
        return self.clicked / self.searches if self.searches else None


def credit_ab(records: Iterable[ExperimentRecord], events: Iterable[EventRecord]) -> tuple[ArmCredit, ArmCredit]:
    """(current, candidate) arms of the A/B searches `records`, with the clicks of `events`."""
    clicked = clicked_results(events)
    searches = {CURRENT: 0, CANDIDATE: 0}
    with_click = {CURRENT: 0, CANDIDATE: 0}
    for r in records:
        if r.arm not in searches:
            raise ValueError(f"search {r.query_id} of experiment {r.experiment} is in arm {r.arm!r}, not an A/B arm")
        searches[r.arm] += 1
        with_click[r.arm] += bool(clicked.get(r.query_id))
    return ArmCredit(CURRENT, searches[CURRENT], with_click[CURRENT]), ArmCredit(
        CANDIDATE, searches[CANDIDATE], with_click[CANDIDATE]
    )


# ---------------------------------------------------------------------------------------------- tests
def sign_test(wins: int, losses: int) -> float | None:
    """Two-sided exact binomial p-value of `wins` against `losses` (ties left out); None when both are 0."""
    from scipy.stats import binomtest

    return float(binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else None


def ctr_test(current: ArmCredit, candidate: ArmCredit) -> float | None:
    """Fisher's exact test (two-sided) of the two arms' click-through rates; None while an arm is empty."""
    from scipy.stats import fisher_exact

    if not current.searches or not candidate.searches:
        return None
    table = [
        [candidate.clicked, candidate.searches - candidate.clicked],
        [current.clicked, current.searches - current.clicked],
    ]
    return float(fisher_exact(table).pvalue)


def more_interleaved(credit: InterleaveCredit) -> int | None:
    """About how many more interleaved searches the observed win rate needs before the sign test would
    reach p < `ALPHA` (the share of searches that decide staying as it is); None at a tie or nothing
    decided yet. A point estimate, not a power calculation: collect more than that for a firm answer."""
    from scipy.stats import binomtest

    decided = credit.wins + credit.losses
    if not decided or credit.wins == credit.losses:
        return None
    rate = credit.wins / decided
    n = max(decided + 1, math.ceil((_Z / (2 * abs(rate - 0.5))) ** 2 * 0.8))
    for _ in range(500):  # the normal approximation, then up to where the exact test agrees
        if binomtest(round(rate * n), n, 0.5).pvalue < ALPHA:
            break
        n = math.ceil(n * 1.02) + 1
    return max(1, math.ceil(n * credit.searches / decided) - credit.searches)


def more_ab(current: ArmCredit, candidate: ArmCredit) -> int | None:
    """About how many more searches (both arms, split as so far) the observed click-through rates need
    before a two-proportion test would reach p < `ALPHA` (normal approximation); None at equal rates or an
    empty arm."""
    p1, p2 = candidate.ctr, current.ctr
    if p1 is None or p2 is None or p1 == p2:
        return None
    total = current.searches + candidate.searches
    share = candidate.searches / total
    needed = _Z**2 * (p1 * (1 - p1) / share + p2 * (1 - p2) / (1 - share)) / (p1 - p2) ** 2
    return max(1, math.ceil(needed) - total)


@dataclass(frozen=True)
class Recommendation:
    """`decision`: 'promote' (the candidate), 'keep' (the current run) or 'undecided'; `reason` in words;
    `more_searches`: about how many more searches until the observed difference would be significant
    (None: unknown, collect more)."""

    decision: str
    reason: str
    more_searches: int | None = None


def recommend(
    p_value: float | None,
    candidate_better: bool | None,
    more: int | None,
    rate: str,
    how: tuple[str, str] = ("it wins", "the candidate loses"),
) -> Recommendation:
    """The advice from a test's `p_value` and the direction of the difference (None: none observed);
    `rate` says what the estimate of `more` is at (e.g. 'a win rate of 62% of decided searches'); `how`
    says how the candidate did, better and worse, in words."""
    if p_value is not None and p_value < ALPHA and candidate_better is not None:
        if candidate_better:
            return Recommendation(PROMOTE, f"promote the candidate: {how[0]} (p = {p_value:.3g} < {ALPHA})")
        return Recommendation(KEEP, f"keep the current run: {how[1]} (p = {p_value:.3g} < {ALPHA})")
    shown = "no test yet" if p_value is None else f"p = {p_value:.3g}"
    if more is None:
        return Recommendation(UNDECIDED, f"no decision yet ({shown}): collect more")
    return Recommendation(
        UNDECIDED, f"no decision yet ({shown}): about {more} more searches in the experiment at {rate}", more
    )


# ---------------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class OfflineNumbers:
    """The numbers a run was chosen on (its system.json, as /api/info shows them); `problem` says why
    they are unknown (all None then)."""

    run: str
    system: str | None = None
    kind: str | None = None
    dev_ndcg10: float | None = None
    test_ndcg10: float | None = None
    problem: str | None = None


@dataclass(frozen=True)
class ExperimentReport:
    """One experiment: its searches, their credit (`interleave` or `arms`), the test, the advice, and the
    offline numbers of the runs compared (current runs first, then the candidate)."""

    experiment: str
    mode: str
    searches: int
    first: datetime
    last: datetime
    current_runs: tuple[str, ...]
    candidate_run: str
    test: str
    p_value: float | None
    recommendation: Recommendation
    offline: tuple[OfflineNumbers, ...]
    interleave: InterleaveCredit | None = None
    arms: tuple[ArmCredit, ...] | None = None

    def to_dict(self) -> dict:
        """The report as JSON values (times in ISO 8601 UTC, `ctr` per arm)."""
        out = asdict(self)
        out |= {"first": iso(self.first), "last": iso(self.last)}
        for numbers in out["offline"]:  # named as /api/info and system.json name them
            numbers["dev_ndcg@10"], numbers["test_ndcg@10"] = numbers.pop("dev_ndcg10"), numbers.pop("test_ndcg10")
        if self.arms is not None:
            out["arms"] = [{**asdict(a), "ctr": a.ctr} for a in self.arms]
        return out


def build_report(
    records: Sequence[ExperimentRecord],
    events: Iterable[EventRecord],
    offline: Callable[[str], OfflineNumbers] | None = None,
) -> ExperimentReport:
    """The report of one experiment from its searches `records` and the events about them; `offline`
    gives a run's numbers by its name (None: unknown, "not asked for"). ValueError when `records` is
    empty or mixes experiments, modes or candidate runs."""
    if not records:
        raise ValueError("no searches to report on")
    setups = {(r.experiment, r.mode, r.candidate_run) for r in records}
    if len(setups) > 1:
        raise ValueError(f"the searches mix experiments: {', '.join(map(str, sorted(setups)))}")
    name, mode, candidate_run = setups.pop()
    current_runs = tuple(dict.fromkeys(r.current_run for r in sorted(records, key=lambda r: r.timestamp)))
    runs = (*current_runs, candidate_run)
    numbers = tuple(offline(run) if offline else OfflineNumbers(run, problem="not asked for") for run in runs)
    common = dict(
        experiment=name,
        mode=mode,
        searches=len(records),
        first=min(r.timestamp for r in records),
        last=max(r.timestamp for r in records),
        current_runs=current_runs,
        candidate_run=candidate_run,
        offline=numbers,
    )
    if mode == "interleave":
        credit = credit_interleaved(records, events)
        p = sign_test(credit.wins, credit.losses)
        decided = credit.wins + credit.losses
        rate = f"a win rate of {credit.wins / decided:.0%} of decided searches" if decided else ""
        better = None if credit.wins == credit.losses else credit.wins > credit.losses
        advice = recommend(p, better, more_interleaved(credit), rate)
        test = "sign test (two-sided exact binomial, wins against losses, ties left out)"
        return ExperimentReport(test=test, p_value=p, recommendation=advice, interleave=credit, **common)
    current, candidate = credit_ab(records, events)
    p = ctr_test(current, candidate)
    better = (
        None if None in (current.ctr, candidate.ctr) or current.ctr == candidate.ctr else candidate.ctr > current.ctr
    )
    rate = (
        f"click-through rates of {candidate.ctr:.1%} (candidate) and {current.ctr:.1%} (current)"
        if better is not None
        else ""
    )
    how = ("its click-through rate is higher", "the candidate's click-through rate is lower")
    advice = recommend(p, better, more_ab(current, candidate), rate, how)
    test = "Fisher's exact test (two-sided) of the click-through rates"
    return ExperimentReport(test=test, p_value=p, recommendation=advice, arms=(current, candidate), **common)


class ExperimentSource(Protocol):
    """What `reports` reads (a `FeedbackStore`)."""

    def experiment_names(self) -> list[str]: ...

    def experiment_records(self, experiment: str) -> list[ExperimentRecord]: ...

    def experiment_events(self, experiment: str) -> list[EventRecord]: ...


def reports(
    source: ExperimentSource,
    experiment: str | None = None,
    offline: Callable[[str], OfflineNumbers] | None = None,
) -> list[ExperimentReport]:
    """The report of `experiment` (None: of every experiment the store holds, oldest first) from a store.
    InputError for an experiment it does not hold (naming those it does) or one it holds mixed up."""
    names = source.experiment_names()
    if experiment is not None and experiment not in names:
        held = f"it holds {', '.join(names)}" if names else "it holds none"
        raise InputError(f"no experiment {experiment!r} in the feedback store: {held}")
    out = []
    for name in [experiment] if experiment is not None else names:
        try:
            out.append(build_report(source.experiment_records(name), source.experiment_events(name), offline))
        except ValueError as exc:
            raise InputError(f"experiment {name!r}: {exc}") from None
    return out
