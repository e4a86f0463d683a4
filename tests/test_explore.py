"""Exploration (feedback/explore.py): a seeded share of searches with one adjacent pair swapped."""

from __future__ import annotations

import pytest

from prompt_retriever.errors import InputError
from prompt_retriever.feedback.explore import Explorer, insert_from_below, swap_adjacent


def test_swap_adjacent_swaps_exactly_one_neighbouring_pair():
    assert swap_adjacent(["a", "b", "c"], 1) == ["a", "c", "b"]
    with pytest.raises(ValueError):
        swap_adjacent(["a", "b"], 1)


def test_the_share_explored_and_the_pairs_swapped_follow_the_seed():
    ids = [f"p{i}" for i in range(10)]
    a, b = Explorer(0.2, seed=3), Explorer(0.2, seed=3)
    orders = [a.order(ids) for _ in range(2000)]
    assert orders == [b.order(ids) for _ in range(2000)]  # one seed, one sequence
    changed = [o for o in orders if o != ids]
    assert 0.15 < len(changed) / len(orders) < 0.25
    for o in changed:  # every answer keeps its results; exactly two neighbours trade places
        assert sorted(o) == sorted(ids)
        moved = [i for i, (x, y) in enumerate(zip(o, ids, strict=True)) if x != y]
        assert len(moved) == 2 and moved[1] == moved[0] + 1
    swapped_at = {[i for i, (x, y) in enumerate(zip(o, ids, strict=True)) if x != y][0] for o in changed}
    assert swapped_at == set(range(9))  # every pair of ranks gets explored
    assert a.explored == len(changed)


def test_which_searches_are_explored_does_not_depend_on_the_answers_lengths():
    """One seed, one sequence of decisions, whatever the lengths of the answers (randrange used to draw
    a number of words that varies with the length, shifting every later decision)."""
    a, b = Explorer(0.5, seed=3), Explorer(0.5, seed=3)
    lengths = [3, 10, 7, 2, 1, 20, 100, 0] * 50
    explored_a = [a.pair(10) is not None for _ in lengths]
    explored_b = [b.pair(n) is not None or n < 2 for n in lengths]  # fewer than two results: nothing to swap
    assert [x for x, n in zip(explored_a, lengths, strict=True) if n >= 2] == [
        y for y, n in zip(explored_b, lengths, strict=True) if n >= 2
    ]


def test_an_answer_of_one_result_is_never_changed_and_bad_shares_are_refused():
    e = Explorer(1.0, seed=0)
    assert e.order(["only"]) == ["only"] and e.order([]) == []
    for share in (0, -0.1, 1.5):
        with pytest.raises(InputError):
            Explorer(share)


def test_exploration_lets_the_click_model_tell_examination_from_attractiveness():
    """A system that answers each query the same way every time: without exploration the click model has
    nothing to estimate examination from (flat, plain click rates); with 30% of searches explored it finds
    the examination the clicks were drawn with."""
    import random
    from datetime import timedelta

    from prompt_retriever.feedback.clickmodel import estimate
    from prompt_retriever.feedback.records import EventRecord, QueryRecord, utc

    theta = (1.0, 0.7, 0.5, 0.4, 0.3)
    rng = random.Random(11)
    answers = {f"query {q}": [f"d{q}-{j}" for j in range(5)] for q in range(40)}
    alpha = {(t, d): rng.uniform(0.1, 0.9) for t, ids in answers.items() for d in ids}

    def log(explorer: Explorer | None):
        queries, events = [], []
        for n in range(6000):
            text = f"query {n % 40}"
            ids = explorer.order(answers[text]) if explorer else answers[text]
            q = QueryRecord(f"q{n}", utc(2026, 1, 1) + timedelta(seconds=n), "c", text, tuple(ids), 5)
            queries.append(q)
            for r, d in enumerate(ids):
                if rng.random() < theta[r] * alpha[(text, d)]:
                    events.append(EventRecord(q.query_id, q.timestamp, "client-1", "open", d, r + 1))
        return queries, events

    flat = estimate(*log(None))
    assert flat.theta == (1.0,) * 5
    explored = estimate(*log(Explorer(0.3, seed=5)))
    assert explored.theta == pytest.approx(theta, abs=0.1)


def test_a_server_exploring_every_search_answers_with_one_pair_swapped_and_logs_that_order(small_retriever, tmp_path):
    """Through the real HTTP API: with `explorer` at share 1, each answer is the system's ranking with one
    adjacent pair swapped, its ranks renumbered; the log keeps the order shown, and an event about a result
    at its shown rank is taken."""
    import httpx
    from feedback_util import app_server, event, search, wait_for

    from prompt_retriever.feedback import FeedbackRecorder, open_store
    from prompt_retriever.serving.api import create_app

    ranked = [h.prompt.id for h in small_retriever.search("a lighthouse keeper alone in a storm", k=5)]
    recorder = FeedbackRecorder(open_store(tmp_path / "f.db"), max_wait=0.05)
    try:
        app = create_app(small_retriever, feedback=recorder, explorer=Explorer(1.0, seed=1))
        with app_server(app) as base:
            answers = [search(base, "a lighthouse keeper alone in a storm", k=5) for _ in range(12)]
            for a in answers:
                ids = [h["prompt"]["id"] for h in a["results"]]
                assert ids != ranked and sorted(ids) == sorted(ranked)
                assert [h["rank"] for h in a["results"]] == [1, 2, 3, 4, 5]
            a = answers[0]
            second = a["results"][1]["prompt"]["id"]
            r = httpx.post(base + "/api/events", json=event(a["query_id"], "open", second, 2), timeout=10)
            assert r.status_code == 202, r.text
            recorder.flush()
            q = wait_for(lambda: recorder.store.query(a["query_id"]), what="the search stored")
            assert list(q.object_ids) == [h["prompt"]["id"] for h in a["results"]]
    finally:
        recorder.close()


def test_serve_refuses_explore_without_feedback_and_a_seed_without_explore(small_corpus_path):
    from typer.testing import CliRunner

    from prompt_retriever.cli import app as cli

    runner = CliRunner()
    r = runner.invoke(cli, ["serve", "--corpus", str(small_corpus_path), "--explore", "0.1"])
    assert r.exit_code == 2 and "--explore needs --feedback" in r.output
    r = runner.invoke(cli, ["serve", "--corpus", str(small_corpus_path), "--explore-seed", "3"])
    assert r.exit_code == 2 and "--explore-seed belongs to --explore" in r.output
    r = runner.invoke(cli, ["serve", "--corpus", str(small_corpus_path), "--explore-depth", "5"])
    assert r.exit_code == 2 and "--explore-depth belongs to --explore" in r.output
    r = runner.invoke(
        cli,
        ["serve", "--corpus", str(small_corpus_path), "--feedback", "f.db", "--explore", "0.1", "--explore-depth", "5",
         "--candidate", str(small_corpus_path.parent)],
    )  # fmt: skip
    assert r.exit_code == 2 and "--explore-depth and --candidate conflict" in r.output


def test_exploring_from_below_shows_one_result_from_under_the_page_in_its_lower_half():
    """With a depth, an explored search shows result k+1..k+depth at a rank in the lower half of the k
    shown; the decision is made before the search, three draws a search whatever k, so one seed gives one
    sequence of decisions."""
    assert insert_from_below(list("abcdefgh"), k=4, below=2, at=3) == ["a", "b", "c", "g"]
    assert insert_from_below(list("abcdefgh"), k=4, below=0, at=2) == ["a", "b", "e", "c"]
    with pytest.raises(ValueError):
        insert_from_below(list("abcde"), k=4, below=1, at=2)  # nothing that far below
    a, b = Explorer(0.5, seed=4, depth=20), Explorer(0.5, seed=4, depth=20)
    moves = [a.from_below(10) for _ in range(400)]
    ks = [10, 3, 7, 2] * 100  # another k (of 2 or more) changes where, never whether or from how far below
    assert [m and m[0] for m in moves] == [m and m[0] for m in (b.from_below(k) for k in ks)]
    shown = [m for m in moves if m is not None]
    assert 150 < len(shown) < 250 and a.explored == len(shown)
    assert {below for below, _ in shown} == set(range(20)) and {at for _, at in shown} == set(range(5, 10))
    with pytest.raises(InputError):
        Explorer(0.1, depth=51)
    one = Explorer(1.0, seed=2, depth=5)
    assert [one.from_below(1) for _ in range(20)] == [None] * 20  # k = 1: the top result is never replaced


def test_a_server_exploring_from_below_shows_a_missed_prompt_and_logs_the_order_shown(small_retriever, tmp_path):
    """Through the real HTTP API: with depth 3 at share 1, each answer is the system's top 4 with one of
    its results 5-7 shown in the lower half; the log keeps the order shown, and an event on that prompt
    at its shown rank is taken."""
    import httpx
    from feedback_util import app_server, event, search, wait_for

    from prompt_retriever.feedback import FeedbackRecorder, open_store
    from prompt_retriever.serving.api import create_app

    query = "a lighthouse keeper alone in a storm"
    ranked = [h.prompt.id for h in small_retriever.search(query, k=7)]
    recorder = FeedbackRecorder(open_store(tmp_path / "f.db"), max_wait=0.05)
    try:
        explorer = Explorer(1.0, seed=1, depth=3)
        app = create_app(small_retriever, feedback=recorder, explorer=explorer)
        with app_server(app) as base:
            answers = [search(base, query, k=4) for _ in range(10)]
            assert explorer.explored == 10
            whole = search(base, query, k=len(small_retriever))  # nothing below the page: answered as it is
            assert [h["prompt"]["id"] for h in whole["results"]] == [
                h.prompt.id for h in small_retriever.search(query, k=len(small_retriever))
            ]
            assert explorer.explored == 10  # and not counted as explored
            for a in answers:
                ids = [h["prompt"]["id"] for h in a["results"]]
                (new,) = set(ids) - set(ranked[:4])
                assert new in ranked[4:7] and ids.index(new) in (2, 3), ids
                assert [i for i in ids if i != new] == [i for i in ranked[:4] if i in ids]
                assert [h["rank"] for h in a["results"]] == [1, 2, 3, 4]
            a = answers[0]
            ids = [h["prompt"]["id"] for h in a["results"]]
            (new,) = set(ids) - set(ranked[:4])
            r = httpx.post(base + "/api/events", json=event(a["query_id"], "open", new, ids.index(new) + 1), timeout=10)
            assert r.status_code == 202, r.text
            recorder.flush()
            q = wait_for(lambda: recorder.store.query(a["query_id"]), what="the search stored")
            assert list(q.object_ids) == ids
    finally:
        recorder.close()
