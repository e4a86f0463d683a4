"""The position-based click model (feedback/clickmodel.py) on hand-made logs with known answers: EM recovers
the examination and attractiveness a seeded log was drawn from; a prompt always shown at rank 5 beats one
at rank 1 with the same clicks per impression; the minimum of impressions; copies count more than opens;
a thumbs down makes a pair 0; an action repeated on one result counts once; queries grouped by their text."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from prompt_retriever.errors import InputError
from prompt_retriever.feedback.clickmodel import ClickModelConfig, estimate, query_key
from prompt_retriever.feedback.records import EventRecord, QueryRecord, utc

THETA = (1.0, 0.8, 0.6, 0.5, 0.4, 0.33, 0.28, 0.24, 0.2, 0.17)
T0 = utc(2026, 3, 1)


class Log:
    """A log built by hand: `search` answers ids in rank order, `act` records an action on one of them."""

    def __init__(self) -> None:
        self.queries: list[QueryRecord] = []
        self.events: list[EventRecord] = []

    def search(self, text: str, ids: list[str] | tuple[str, ...]) -> QueryRecord:
        q = QueryRecord(f"q{len(self.queries)}", T0 + timedelta(minutes=len(self.queries)), "c", text, tuple(ids), 10)
        self.queries.append(q)
        return q

    def act(self, q: QueryRecord, action: str, object_id: str) -> None:
        rank = q.object_ids.index(object_id) + 1
        self.events.append(EventRecord(q.query_id, q.timestamp, "client-1", action, object_id, rank))

    def shuffled(self, rng: random.Random, queries: int, searches: int, alpha: dict) -> None:
        """Searches whose answers are shuffled each time (so examination can be told apart), clicks drawn
        from THETA and a random attractiveness per pair (written into `alpha`)."""
        for qi in range(queries):
            text, docs = f"query {qi}", [f"d{qi}-{j}" for j in range(len(THETA))]
            alpha.update({(text, d): rng.uniform(0.05, 0.9) for d in docs})
            for _ in range(searches):
                rng.shuffle(docs)
                q = self.search(text, docs)
                for r, d in enumerate(docs):
                    if rng.random() < THETA[r] * alpha[(text, d)]:
                        self.act(q, "open", d)

    def fit(self, config: ClickModelConfig = ClickModelConfig(), **kw):
        return estimate(self.queries, self.events, config, **kw)


@pytest.fixture(scope="module")
def seeded():
    log, alpha = Log(), {}
    log.shuffled(random.Random(7), queries=20, searches=300, alpha=alpha)
    return log, alpha


def test_em_recovers_examination_and_attractiveness(seeded):
    log, alpha = seeded
    result = log.fit()
    assert result.converged and result.corrected
    assert result.theta[0] == 1.0 and len(result.theta) == len(THETA)
    assert max(abs(a - b) for a, b in zip(result.theta, THETA, strict=True)) < 0.04
    errors = [abs(result.pairs[pair].score - a) for pair, a in alpha.items()]
    assert sum(errors) / len(errors) < 0.05
    assert all(s > 0 for s in result.theta_support)
    # uncorrected: theta all 1, the score is clicks per impression, and it underrates every pair
    plain = log.fit(correct_bias=False)
    assert plain.theta == (1.0,) * len(THETA) and not plain.corrected
    for pair, est in plain.pairs.items():
        assert est.score == est.ctr == est.clicks / est.impressions <= result.pairs[pair].score


def test_deterministic(seeded):
    log, _ = seeded
    a, b = log.fit(), log.fit()
    assert a.theta == b.theta and a.pairs == b.pairs and a.iterations == b.iterations


def test_a_prompt_at_rank_5_beats_one_at_rank_1_with_the_same_clicks(seeded):
    log, _ = seeded
    extra = Log()
    extra.queries, extra.events = list(log.queries), list(log.events)
    for i in range(40):  # the same fixed answer every time; `top` and `deep` each clicked in 10 of 40
        q = extra.search("fixed answer", ["top", "f2", "f3", "f4", "deep"])
        if i % 4 == 0:
            extra.act(q, "open", "top")
        if i % 4 == 1:
            extra.act(q, "open", "deep")
    result = extra.fit(ClickModelConfig(lower_bound=False))
    top, deep = result.pairs[("fixed answer", "top")], result.pairs[("fixed answer", "deep")]
    assert top.ctr == deep.ctr == 0.25
    assert top.score == pytest.approx(0.25)
    assert deep.score == pytest.approx(0.25 / result.theta[4], rel=1e-3) and deep.score > 2 * top.score
    assert (top.grade, deep.grade) == (1, 2)
    # graded by lower bounds (the default), 40 impressions are less sure: each a grade lower, still apart
    sure = extra.fit()
    assert (sure.pairs[("fixed answer", "top")].grade, sure.pairs[("fixed answer", "deep")].grade) == (0, 1)
    plain = extra.fit(correct_bias=False)
    assert plain.pairs[("fixed answer", "top")].score == plain.pairs[("fixed answer", "deep")].score


def test_without_rank_variation_nothing_is_corrected():
    log = Log()
    for i in range(10):
        q = log.search("lighthouse", ["a", "b", "c"])
        log.act(q, "open", ["a", "b", "c"][i % 3])
    result = log.fit()
    assert result.theta == (1.0, 1.0, 1.0) and result.theta_support == (0, 0, 0)
    assert {p: e.score for p, e in result.pairs.items()} == pytest.approx({p: e.ctr for p, e in result.pairs.items()})


def test_min_impressions_respected_and_counted():
    log = Log()
    for i in range(3):
        q = log.search("storm", ["often", "twice" if i < 2 else "once"])
        log.act(q, "copy", q.object_ids[1])
    result = log.fit(ClickModelConfig(min_impressions=3))
    grades = {pid: e.grade for (_, pid), e in result.pairs.items()}
    assert grades == {"often": 0, "twice": None, "once": None}
    assert result.pairs_below_min == 2
    assert log.fit(ClickModelConfig(min_impressions=1)).pairs_below_min == 0


def test_copies_outrank_opens():
    log = Log()
    for i in range(10):
        q = log.search("ghost ship", ["opened", "copied", "used", "other"] if i % 2 else ["copied", "opened", "used"])
        if i % 5 == 0:  # each acted on in 2 of 10 searches
            log.act(q, "open", "opened")
            log.act(q, "copy", "copied")
            log.act(q, "use", "used")
    pairs = {pid: e for (_, pid), e in log.fit(ClickModelConfig(lower_bound=False), correct_bias=False).pairs.items()}
    assert pairs["opened"].clicks == pairs["copied"].clicks == pairs["used"].clicks == 2
    assert pairs["opened"].satisfied == 0 and pairs["copied"].satisfied == pairs["used"].satisfied == 0.2
    assert (pairs["opened"].grade, pairs["copied"].grade, pairs["used"].grade) == (1, 2, 2)
    assert pairs["copied"].copies == 2 and pairs["used"].uses == 2 and pairs["opened"].opens == 2
    sure = {pid: e.grade for (_, pid), e in log.fit(correct_bias=False).pairs.items()}
    assert sure["opened"] < sure["copied"] == sure["used"]


def test_one_click_at_a_rank_seldom_examined_is_not_enough_evidence():
    """Graded by lower bounds (the default), one click on a prompt always shown at rank 5 (examined a fifth
    as often as rank 1) in 3 searches does not make it clearly relevant, as its estimate alone would; 20
    clicks in 60 searches do."""
    log = Log()
    rng = random.Random(3)
    for _ in range(600):  # shuffled answers of another query: what the examination is learnt from
        docs = [f"s{j}" for j in range(5)]
        rng.shuffle(docs)
        q = log.search("shuffled", docs)
        for r, d in enumerate(docs):
            if rng.random() < (1.0, 0.6, 0.4, 0.3, 0.2)[r] * 0.5:
                log.act(q, "open", d)
    for i in range(3):
        q = log.search("lucky", ["a", "b", "c", "d", "once"])
        if i == 0:
            log.act(q, "open", "once")
    for i in range(60):
        q = log.search("often", ["a", "b", "c", "d", "deep"])
        if i % 3 == 0:
            log.act(q, "open", "deep")
    result = log.fit()
    once, deep = result.pairs[("lucky", "once")], result.pairs[("often", "deep")]
    assert once.score > 0.5 and once.grade < 2  # its estimate alone would make it grade 2
    assert deep.grade == 2


def test_thumbs_down_forces_grade_0():
    log = Log()
    for i in range(6):
        q = log.search("dragon", ["liked", "disliked"])
        for pid in ("liked", "disliked"):
            log.act(q, "open", pid)
            log.act(q, "copy", pid)
        log.act(q, "thumbs_up", "liked")
        if i < 4:
            log.act(q, "thumbs_down", "disliked")
        else:
            log.act(q, "thumbs_up", "disliked")
    pairs = {pid: e for (_, pid), e in log.fit().pairs.items()}
    assert pairs["liked"].grade == 2
    assert pairs["disliked"].thumbs_down == 4 and pairs["disliked"].clicks == 6 and pairs["disliked"].grade == 0
    assert {pid: e.grade for (_, pid), e in log.fit(ClickModelConfig(down_share=0.7)).pairs.items()} == {
        "liked": 2,
        "disliked": 2,
    }


def test_repeated_events_count_once_and_strays_are_ignored():
    log = Log()
    for _ in range(4):
        q = log.search("moon", ["a", "b"])
        for _ in range(5):
            log.act(q, "open", "a")
            log.act(q, "copy", "a")
    log.events.append(EventRecord("q-unknown", T0, "client-1", "open", "a", 1))  # a search not in the log
    log.events.append(EventRecord("q0", T0, "client-1", "open", "zzz", 1))  # a prompt it did not answer
    log.events.append(EventRecord("q0", T0, "client-1", "hover", "a", 1))  # not an action
    result = log.fit()
    a = result.pairs[("moon", "a")]
    assert (a.impressions, a.clicks, a.opens, a.copies) == (4, 4, 4, 4)
    assert result.events_used == 8 and result.events_ignored == 3 and result.searches == 4


def test_an_answer_repeating_an_id_keeps_each_prompt_at_its_own_rank():
    """A click on the prompt after a repeated id falls in the cell its impression was counted in (it used
    to land at another rank, in a cell of clicks without impressions, which made the pair look shown at
    two ranks and drove examination to 0)."""
    log = Log()
    for _ in range(4):
        q = log.search("echo", ["a", "a", "b"])
        log.act(q, "open", "b")
    result = log.fit()
    b = result.pairs[("echo", "b")]
    assert (b.impressions, b.clicks, b.mean_rank, b.ctr, b.score) == (4, 4, 3.0, 1.0, 1.0)
    assert result.pairs[("echo", "a")].mean_rank == 1.0
    assert result.theta == (1.0, 1.0, 1.0) and result.theta_support == (0, 0, 0)  # one rank each: nothing to fit


def test_queries_grouped_by_normalised_text():
    log = Log()
    for text in ("Haunted  Lighthouse", "haunted lighthouse", " HAUNTED lighthouse", "haunted lighthouse", "x"):
        log.search(text, ["p"])
    result = log.fit()
    assert query_key(" Haunted\tLIGHTHOUSE ") == "haunted lighthouse"
    group = result.groups["haunted lighthouse"]
    assert (group.text, group.searches) == ("haunted lighthouse", 4)
    assert (group.first_seen, group.last_seen) == (T0, T0 + timedelta(minutes=3))
    assert list(result.groups) == ["haunted lighthouse", "x"]
    assert result.pairs[("haunted lighthouse", "p")].impressions == 4


def test_empty_log():
    result = estimate([], [])
    assert result.theta == (1.0,) and result.pairs == {} and result.groups == {} and result.searches == 0


@pytest.mark.parametrize(
    "kw",
    [
        {"min_impressions": 0},
        {"max_rank": 0},
        {"tolerance": 0},
        {"click_at": 1.5},
        {"click_at": 0.6, "clear_click_at": 0.5},
        {"action_weights": {"thumbs_down": 1.0}},
        {"action_weights": {"copy": 2.0}},
        {"action_weights": {"click": 1.0}},
    ],
)
def test_bad_config_is_a_clear_error(kw):
    with pytest.raises(InputError):
        ClickModelConfig(**kw)


def test_max_rank_pools_deeper_ranks():
    log = Log()
    for i in range(6):
        log.search("deep", ["a", "b", "c", "d"] if i % 2 else ["d", "c", "b", "a"])
    result = log.fit(ClickModelConfig(max_rank=2))
    assert len(result.theta) == 2
    assert result.pairs[("deep", "a")].mean_rank == 2.5
    assert ClickModelConfig(action_weights={"use": 1.0, "copy": 0.5}).weight("copy") == 0.5
