"""Query chains (feedback/chains.py) on hand-made logs with known answers: a search left unsatisfied and
reformulated by the same client chains to what the next search satisfied; the window, a satisfied first
search, a repeated query, a client without an id, `min_chains` and thumbs down; the chained pair reaches the
judged file with its evidence, also through a real SQLite store; chains off changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from prompt_retriever.errors import InputError
from prompt_retriever.feedback import ClickModelConfig, EventRecord, QueryRecord, implicit_judgments, open_store
from prompt_retriever.feedback.chains import ChainEstimate, ChainLog
from prompt_retriever.feedback.judgments import store_judgments
from prompt_retriever.feedback.records import utc

T0 = utc(2026, 6, 1, 9)
FIRST, SECOND = "sad robot", "a robot who grieves for its maker"
SHOWN = ("p-1", "p-2", "p-3")  # what the first request answers: none of it is wanted


class Log:
    def __init__(self) -> None:
        self.queries: list[QueryRecord] = []
        self.events: list[EventRecord] = []

    def search(self, client: str | None, text: str, ids: tuple[str, ...], at: float) -> QueryRecord:
        q = QueryRecord(f"q{len(self.queries):04d}", T0 + timedelta(seconds=at), client, text, ids, 10)
        self.queries.append(q)
        return q

    def act(self, q: QueryRecord, action: str, object_id: str) -> None:
        rank = q.object_ids.index(object_id) + 1
        self.events.append(EventRecord(q.query_id, q.timestamp, q.client_id or "anon", action, object_id, rank))

    def reformulation(self, client: str | None, at: float, gap: float = 30.0, action: str = "copy") -> None:
        """FIRST answered SHOWN and left alone, then SECOND `gap` seconds later, `action` on p-9."""
        self.search(client, FIRST, SHOWN, at)
        self.act(self.search(client, SECOND, ("p-9", "p-1"), at + gap), action, "p-9")

    def chains(self, config: ClickModelConfig = ClickModelConfig()) -> dict[tuple[str, str], ChainEstimate]:
        log = ChainLog(config)
        assert list(log.searches(self.queries)) == self.queries  # passed on, untouched
        assert list(log.events(self.events)) == self.events
        return log.estimates()


def stored_judgments(log: Log, tmp_path):
    """The judgments of `log` written to a real SQLite feedback store and read back from it."""
    store = open_store(tmp_path / "f.db")
    try:
        store.write(log.queries, log.events)
        return store_judgments(store)
    finally:
        store.close()


def test_reformulations_chain_the_first_request_to_what_the_second_satisfied():
    log = Log()
    for c in range(3):
        log.reformulation(f"writer-{c}", at=3600 * c)
    chains = log.chains()
    assert chains == {(FIRST, "p-9"): ChainEstimate(chains=3, reformulated=3, grade=2)}
    result = implicit_judgments(log.queries, log.events)
    judged = {q.query: q for q in result.queries}
    assert judged[FIRST].relevant == {"p-9": 2}  # never shown for FIRST: the clicks alone could not say it
    ev = judged[FIRST].evidence["p-9"]
    assert ev == {"impressions": 0, "chains": 3, "reformulated": 3, "chain_grade": 2, "click_grade": None, "grade": 2}
    assert result.pairs_by_chains == 1 and result.to_json()["pairs_by_chains"] == 1
    assert judged[SECOND].relevant == {"p-9": 2}  # the clicks' own judgment, as before


def test_what_is_not_a_reformulation():
    log = Log()
    for c in range(3):
        log.reformulation(f"writer-{c}", at=3600 * c)
    log.reformulation("late", at=20000, gap=601)  # past the window: two separate visits
    log.search("happy", FIRST, SHOWN, 30000)
    log.act(log.search("happy", SECOND, ("p-9",), 30010), "copy", "p-9")
    log.act(log.queries[-2], "copy", "p-2")  # the first request was satisfied: nothing to reformulate
    log.reformulation(None, at=40000)  # a search without a client id: nobody to follow
    log.reformulation("opener", at=50000, action="open")  # an open only does not satisfy the second search
    assert log.chains() == {(FIRST, "p-9"): ChainEstimate(chains=3, reformulated=4, grade=2)}  # "opener" +1


def test_a_repeated_query_and_a_longer_chain():
    log = Log()
    for c in range(2):
        log.search(f"w{c}", FIRST, SHOWN, 1000 * c)
        log.search(f"w{c}", FIRST, SHOWN, 1000 * c + 5)  # typed again (a second page, a retry): one chain
        log.search(f"w{c}", "grieving machine", ("p-4",), 1000 * c + 10)
        log.act(log.search(f"w{c}", SECOND, ("p-9",), 1000 * c + 20), "use", "p-9")
    chains = log.chains()
    assert chains[(FIRST, "p-9")] == ChainEstimate(chains=2, reformulated=2, grade=2)
    assert chains[("grieving machine", "p-9")] == ChainEstimate(chains=2, reformulated=2, grade=2)


def test_one_chain_is_not_enough_and_a_chain_to_many_prompts_is_not_sure():
    log = Log()
    log.reformulation("only", at=0)
    assert log.chains()[(FIRST, "p-9")].grade is None  # min_chains 2
    assert log.chains(ClickModelConfig(min_chains=1, chain_at=0.1))[(FIRST, "p-9")].grade == 2
    wide = Log()
    for c in range(10):  # ten reformulations, each satisfied by another prompt
        wide.search(f"w{c}", FIRST, SHOWN, 100 * c)
        wide.act(wide.search(f"w{c}", SECOND, (f"p-{10 + c}", "p-9"), 100 * c + 5), "copy", f"p-{10 + c}")
    wide.act(wide.queries[-1], "copy", "p-9")
    chains = wide.chains()
    assert chains[(FIRST, "p-19")] == ChainEstimate(1, 10, None)
    assert chains[(FIRST, "p-9")] == ChainEstimate(1, 10, None)


def test_thumbs_down_keeps_a_chained_prompt_out():
    log = Log()
    for c in range(3):
        log.search(f"w{c}", FIRST, ("p-9", *SHOWN), 100 * c)
        log.act(log.queries[-1], "thumbs_down", "p-9")  # shown for FIRST, and rated down there
        log.act(log.search(f"w{c}", SECOND, ("p-9",), 100 * c + 5), "copy", "p-9")
    assert log.chains()[(FIRST, "p-9")].grade == 2
    result = implicit_judgments(log.queries, log.events)
    assert FIRST not in {q.query for q in result.queries} and result.pairs_by_chains == 0


def test_chains_off_and_through_a_real_store(tmp_path):
    log = Log()
    for c in range(3):
        log.reformulation(f"writer-{c}", at=3600 * c)
    off = implicit_judgments(log.queries, log.events, ClickModelConfig(chain_window_s=0))
    assert [q.query for q in off.queries] == [SECOND] and off.pairs_by_chains == 0
    stored = stored_judgments(log, tmp_path)
    assert [q.to_json() for q in stored.queries] == [
        q.to_json() for q in implicit_judgments(log.queries, log.events).queries
    ]
    assert stored.queries[0].query == FIRST and stored.queries[0].relevant == {"p-9": 2}


@pytest.mark.parametrize("kw", [{"chain_window_s": -1}, {"chain_at": 1.5}, {"min_chains": 0}])
def test_bad_chain_config_is_a_clear_error(kw):
    with pytest.raises(InputError):
        ClickModelConfig(**kw)


def test_cli_chain_window(tmp_path):
    import json

    from typer.testing import CliRunner

    from prompt_retriever.cli import app as cli

    log = Log()
    for c in range(3):
        log.reformulation(f"writer-{c}", at=3600 * c)
    store = open_store(tmp_path / "f.db")
    try:
        store.write(log.queries, log.events)
    finally:
        store.close()
    out = tmp_path / "judged.jsonl"
    args = ["feedback", "judgments", "--feedback", str(tmp_path / "f.db"), "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "query chains made 1 pairs grade 2" in res.output
    assert [json.loads(line)["query"] for line in out.read_text().splitlines()] == [FIRST, SECOND]
    res = CliRunner().invoke(cli, [*args, "--force", "--chain-window", "0", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["pairs_by_chains"] == 0
    assert [json.loads(line)["query"] for line in out.read_text().splitlines()] == [SECOND]
    res = CliRunner().invoke(cli, [*args, "--force", "--chain-window", "-5"])
    assert res.exit_code == 2


def test_each_reformulated_search_chains_once_going_back_and_forth():
    log = Log()
    for c in range(2):  # FIRST, "grieving machine", FIRST again, then SECOND satisfied: FIRST reformulated twice
        log.search(f"w{c}", FIRST, SHOWN, 1000 * c)
        log.search(f"w{c}", "grieving machine", ("p-4",), 1000 * c + 5)
        log.search(f"w{c}", FIRST, SHOWN, 1000 * c + 10)
        log.act(log.search(f"w{c}", SECOND, ("p-9",), 1000 * c + 20), "copy", "p-9")
    assert log.chains()[(FIRST, "p-9")] == ChainEstimate(chains=4, reformulated=4, grade=2)


def test_a_chained_pair_shown_too_seldom_is_counted_graded_not_below_the_minimum():
    log = Log()
    for c in range(3):
        log.search(f"w{c}", FIRST, SHOWN if c else ("p-9", *SHOWN), 100 * c)  # p-9 shown once for FIRST
        log.act(log.search(f"w{c}", SECOND, ("p-9",), 100 * c + 5), "copy", "p-9")
    plain = implicit_judgments(log.queries, log.events, ClickModelConfig(chain_window_s=0))
    chained = implicit_judgments(log.queries, log.events)
    assert chained.pairs_by_chains == 1 and chained.pairs_below_min == plain.pairs_below_min - 1
    assert chained.pairs_judged == plain.pairs_judged + 1


def test_ties_in_time_break_as_the_store_reads_them_and_strays_are_ignored(tmp_path):
    log = Log()
    for c in range(3):  # both searches at one instant: ordered by query id, as the store reads them
        log.queries.append(QueryRecord(f"b{c}", T0, f"w{c}", FIRST, SHOWN, 10))
        log.queries.append(q := QueryRecord(f"a{c}", T0, f"w{c}", SECOND, ("p-9",), 10))
        log.act(q, "copy", "p-9")
        log.events.append(EventRecord(q.query_id, T0, f"w{c}", "copy", "p-77", 2))  # never shown: ignored
    stored = stored_judgments(log, tmp_path)
    records = implicit_judgments(log.queries, log.events)
    assert [q.to_json() for q in stored.queries] == [q.to_json() for q in records.queries]
    # read in the order given, FIRST would have come first and chained; by query id SECOND comes first
    assert log.chains() == {} and [q.query for q in records.queries] == [SECOND]
    assert records.queries[0].relevant == {"p-9": 2}  # the copy of a prompt never shown is not counted


def test_an_event_on_a_prompt_the_search_did_not_show_makes_no_chain():
    log = Log()
    for c in range(3):
        log.reformulation(f"writer-{c}", at=3600 * c)
        second = log.queries[-1]
        log.events.append(EventRecord(second.query_id, second.timestamp, f"writer-{c}", "copy", "p-77", 2))
    assert set(log.chains()) == {(FIRST, "p-9")}


def test_a_request_still_being_typed_is_not_a_reformulation():
    log = Log()
    for c in range(3):  # the page searched as the writer typed, paused, deleted a word, then copied p-9
        for n, text in enumerate(("haunted", "haunted light", "haunted lighthouse keeper", "haunted lighthouse")):
            q = log.search(f"w{c}", text, SHOWN if n < 3 else ("p-9",), 100 * c + n)
        log.act(q, "copy", "p-9")
        log.reformulation(f"w{c}", at=100 * c + 10)  # then a real rephrasing: still chained
    assert log.chains() == {(FIRST, "p-9"): ChainEstimate(chains=3, reformulated=3, grade=2)}
