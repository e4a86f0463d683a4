"""Experiments between the current run and a candidate run (`serve --candidate`): click credit on hand-made
cases, `experiments report` over a hand-made log in a real SQLite store (known wins, losses, ties and
p-value; A/B click-through rates; the runs' offline numbers), and real servers over two real runs (dense
and BM25): interleaved answers recorded with their teams, an open credited to the right team and shown
by GET /api/experiments, the A/B split, the option checks of `serve`. No mocks."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from feedback_util import app_server, event, pg_bin, postgres_server, search, wait_for
from scipy.stats import binomtest, fisher_exact
from server_util import running_server
from typer.testing import CliRunner

from prompt_retriever.cli import app as cli
from prompt_retriever.errors import InputError
from prompt_retriever.feedback import EventRecord, FeedbackRecorder, QueryRecord, open_store
from prompt_retriever.feedback.experiments import (
    ExperimentRecord,
    OfflineNumbers,
    build_report,
    clicked_results,
    credit_ab,
    credit_interleaved,
    interleaved_outcome,
)
from prompt_retriever.feedback.interleave import CANDIDATE, CURRENT, team_draft
from prompt_retriever.feedback.records import utc
from prompt_retriever.search.retriever import PromptRetriever
from prompt_retriever.search.versions import promote
from prompt_retriever.serving.api import create_app
from prompt_retriever.serving.experiment import Experiment

runner = CliRunner()
T0 = utc(2026, 12, 7, 10)
TEAMS = (CURRENT, CANDIDATE, CURRENT, CANDIDATE)
QUERIES = ["ghost in a lighthouse", "a robot learns to paint", "grief after a storm", "love on a night train"]


def qid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def ev(n: int, action: str, position: int, minutes: int = 1) -> EventRecord:
    return EventRecord(qid(n), T0 + timedelta(minutes=minutes), "client-0001", action, f"p-{position}", position)


def xrec(n: int, name: str = "exp-i", mode: str = "interleave", arm: str = "interleaved", **kw) -> ExperimentRecord:
    teams = TEAMS if mode == "interleave" else None
    fields = dict(teams=teams, current_run="run-a", candidate_run="run-b", timestamp=T0 + timedelta(seconds=n))
    return ExperimentRecord(qid(n), name, mode, arm, **(fields | kw))


# ----------------------------------------------------------------------------- credit, by hand
def test_a_click_credits_the_team_of_the_result_clicked_once_per_result():
    assert interleaved_outcome(TEAMS, [2]) == "win"
    assert interleaved_outcome(TEAMS, [1]) == "loss"
    assert interleaved_outcome(TEAMS, [1, 2]) == "tie"
    assert interleaved_outcome(TEAMS, [1, 2, 4]) == "win"
    assert interleaved_outcome(TEAMS, [1, 3, 2]) == "loss"
    assert interleaved_outcome(TEAMS, []) == "no_click"
    with pytest.raises(ValueError, match="position 5 of a search that answered 4"):
        interleaved_outcome(TEAMS, [5])

    # open, open again and copy of one result: one click; thumbs are not clicks
    events = [ev(1, "open", 2), ev(1, "open", 2), ev(1, "copy", 2), ev(1, "thumbs_up", 1), ev(2, "thumbs_down", 1)]
    assert clicked_results(events) == {qid(1): {"p-2": 2}}
    # the current team's two clicks on one search against the candidate's one: a loss, not a tie
    events += [ev(3, "use", 1), ev(3, "open", 3), ev(3, "copy", 4), ev(3, "copy", 4)]
    credit = credit_interleaved([xrec(1), xrec(2), xrec(3)], events)
    assert (credit.wins, credit.losses, credit.ties, credit.no_clicks) == (1, 1, 0, 1)
    assert (credit.candidate_clicks, credit.current_clicks) == (2, 2)

    ab = [xrec(n, mode="ab", arm=arm) for n, arm in enumerate([CURRENT, CURRENT, CANDIDATE, CANDIDATE, CANDIDATE])]
    current, candidate = credit_ab(ab, [ev(0, "open", 1), ev(0, "copy", 2), ev(2, "open", 1), ev(3, "thumbs_up", 1)])
    assert (current.searches, current.clicked, current.ctr) == (2, 1, 0.5)
    assert (candidate.searches, candidate.clicked, candidate.ctr) == (3, 1, 1 / 3)


def test_an_experiment_record_is_consistent_with_its_mode():
    cases = [
        ({"arm": CANDIDATE}, "not an arm of a interleave"),
        ({"mode": "ab", "arm": CANDIDATE, "teams": TEAMS}, "teams"),
        ({"teams": ("current", "nobody")}, "teams"),
        ({"mode": "bandit"}, "mode"),
    ]
    for fields, message in cases:
        with pytest.raises(ValueError, match=message):
            xrec(1, **fields)


def test_the_advice_follows_the_test():
    def report(wins: int, losses: int, ties: int = 0, silent: int = 0):
        records, events, n = [], [], 0
        for position, count in ((2, wins), (1, losses), (None, ties), (0, silent)):
            for _ in range(count):
                n += 1
                records.append(xrec(n))
                clicks = [1, 2] if position is None else [position] if position else []
                events += [ev(n, "open", p) for p in clicks]
        return build_report(records, events, lambda run: OfflineNumbers(run, "a system", "dense", 0.5, 0.4))

    keep = report(2, 14, ties=3)
    assert keep.recommendation.decision == "keep" and keep.p_value == pytest.approx(binomtest(2, 16).pvalue)
    assert "the candidate loses" in keep.recommendation.reason
    promote_it = report(14, 2, silent=5)
    assert promote_it.recommendation.decision == "promote" and "it wins" in promote_it.recommendation.reason
    close = report(6, 4, ties=2, silent=8)
    assert close.recommendation.decision == "undecided" and close.recommendation.more_searches > 0
    assert f"about {close.recommendation.more_searches} more searches in the experiment" in close.recommendation.reason
    even = report(3, 3)
    assert even.recommendation.decision == "undecided" and even.recommendation.more_searches is None
    assert even.recommendation.reason.endswith("collect more")
    nothing = report(0, 0, silent=4)
    assert nothing.p_value is None and "no test yet" in nothing.recommendation.reason
    assert [n.run for n in close.offline] == ["run-a", "run-b"] and close.offline[0].dev_ndcg10 == 0.5
    with pytest.raises(ValueError, match="mix experiments"):
        build_report([xrec(1), xrec(2, name="other")], [])


# ----------------------------------------------------------------------------- the report, from a store
@pytest.fixture(scope="module")
def made_runs(tmp_path_factory, small_prompts, small_retriever) -> Path:
    """A runs folder: run-a (dense over the small corpus, current) and run-b (BM25 over it)."""
    runs = tmp_path_factory.mktemp("experiments") / "runs"
    small_retriever.save_run(runs / "run-a", {"label": "run A", "dev_ndcg@10": 0.61, "test_ndcg@10": 0.58})
    bm25 = PromptRetriever(system="bm25").index(small_prompts)
    bm25.save_run(runs / "run-b", {"label": "run B", "dev_ndcg@10": 0.55, "test_ndcg@10": 0.52})
    promote(runs / "run-a")
    return runs


def hand_made_log(db: Path | str) -> None:
    """Interleave `exp-i`: 30 searches, the candidate wins 15, loses 3, ties 4, 8 without a click (thumbs
    and repeats that must not count among them); A/B `exp-ab`: 40 searches an arm, 10 and 22 clicked."""
    store = open_store(db)
    qs, xs, es = [], [], []
    plan = [("win", 15), ("loss", 3), ("tie", 4), ("none", 8)]
    n = 0
    for outcome, count in plan:
        for _ in range(count):
            n += 1
            qs.append(QueryRecord(qid(n), T0, None, f"query {n}", ("p-1", "p-2", "p-3", "p-4"), 4, run="run-a"))
            xs.append(xrec(n))
            es += {
                "win": [ev(n, "open", 2), ev(n, "open", 2), ev(n, "copy", 2), ev(n, "thumbs_up", 1)],
                "loss": [ev(n, "open", 1), ev(n, "use", 1)],
                "tie": [ev(n, "open", 1), ev(n, "copy", 4)],
                "none": [ev(n, "thumbs_down", 1)],
            }[outcome]
    for arm, clicked in ((CURRENT, 10), (CANDIDATE, 22)):
        for i in range(40):
            n += 1
            qs.append(QueryRecord(qid(n), T0, None, f"query {n}", ("p-1", "p-2"), 2, run="run-a"))
            xs.append(xrec(n, name="exp-ab", mode="ab", arm=arm))
            es += [ev(n, "open", 1)] if i < clicked else []
    store.write(qs, es, xs)
    store.close()


def cli_run(*args: str) -> tuple[int, str]:
    res = runner.invoke(cli, list(args), terminal_width=200)
    return res.exit_code, res.output


def report_cli(*args: str) -> tuple[int, str]:
    return cli_run("experiments", "report", *args)


def test_experiments_report_on_a_hand_made_log(tmp_path, made_runs):
    db = tmp_path / "feedback.db"
    hand_made_log(db)
    p_sign = 1976 / 2**18  # 2 * P(X >= 15), X ~ Binomial(18, 1/2): (816 + 153 + 18 + 1) / 2^18, twice
    assert binomtest(15, 18).pvalue == pytest.approx(p_sign)

    code, out = report_cli("--feedback", str(db), "--experiment", "exp-i", "--runs", str(made_runs))
    assert code == 0, out
    assert "experiment exp-i (interleave): 30 searches" in out
    assert "candidate wins 15, loses 3, ties 4; 8 searches without a click" in out
    assert f"p = {p_sign:.4g}" in out
    assert "run-a: run A (dense), dev nDCG@10 0.6100, test nDCG@10 0.5800" in out
    assert "run-b: run B (bm25), dev nDCG@10 0.5500" in out
    assert "recommendation: promote the candidate: it wins" in out

    code, out = report_cli("--feedback", str(db), "--json")
    assert code == 0, out
    found = {r["experiment"]: r for r in json.loads(out)}
    assert list(found) == ["exp-i", "exp-ab"]  # oldest first
    i, ab = found["exp-i"], found["exp-ab"]
    assert i["interleave"] == {
        "searches": 30,
        "wins": 15,
        "losses": 3,
        "ties": 4,
        "no_clicks": 8,
        "candidate_clicks": 15 + 4,
        "current_clicks": 3 + 4,
    }
    assert i["p_value"] == pytest.approx(p_sign) and i["recommendation"]["decision"] == "promote"
    assert [o["problem"] for o in i["offline"]] == ["not asked for", "not asked for"]
    arms = {a["arm"]: a for a in ab["arms"]}
    assert (arms["current"]["clicked"], arms["candidate"]["clicked"], arms["candidate"]["ctr"]) == (10, 22, 0.55)
    assert ab["p_value"] == pytest.approx(fisher_exact([[22, 18], [10, 30]]).pvalue)
    assert ab["recommendation"]["decision"] == ("promote" if ab["p_value"] < 0.05 else "undecided")
    assert ab["interleave"] is None and i["arms"] is None

    code, out = report_cli("--feedback", str(db), "--experiment", "exp-x")
    assert code == 2 and "no experiment 'exp-x'" in out and "exp-i, exp-ab" in out
    code, out = report_cli("--feedback", str(tmp_path / "none.db"))
    assert code == 2 and "no feedback store at" in out
    code, out = report_cli("--feedback", str(db), "--runs", str(tmp_path / "nowhere"))
    assert code == 2 and "no such runs folder" in out

    # a run the runs folder lacks: said so, not left out
    code, out = report_cli("--feedback", str(db), "--experiment", "exp-i", "--runs", str(tmp_path))
    assert code == 0 and "run-a: unknown (" in out and "not a deployable run" in out

    # purge forgets the experiment's searches with the searches
    store = open_store(db)
    held = store.counts()
    assert held[0] == 110 and store.purge(T0 + timedelta(days=1)) == held
    store.close()
    code, out = report_cli("--feedback", str(db))
    assert code == 0 and "no experiments" in out


@pytest.mark.skipif(pg_bin("initdb") is None or pg_bin("pg_ctl") is None, reason="PostgreSQL not installed")
def test_the_report_reads_the_same_log_from_postgresql():
    folder = Path(tempfile.mkdtemp(prefix="pr-pg-"))  # not pytest's tmp (0700 root): the server runs as postgres
    try:
        with postgres_server(folder) as url:
            hand_made_log(url)
            code, out = report_cli("--feedback", url, "--json")
            assert code == 0, out
            (i, ab) = json.loads(out)
            assert (i["experiment"], ab["experiment"], i["p_value"]) == ("exp-i", "exp-ab", pytest.approx(1976 / 2**18))
            assert [i["interleave"][key] for key in ("wins", "losses", "ties", "no_clicks")] == [15, 3, 4, 8]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------- a real server, two runs
@pytest.fixture(scope="module")
def two_runs(made_runs):
    return PromptRetriever.from_run(made_runs / "run-a"), PromptRetriever.from_run(made_runs / "run-b")


def draws(seed: int, share: float, n: int) -> list[tuple[bool, int]]:
    """The experiment's draws for `n` searches in a row (`Experiment.draw`)."""
    rng = random.Random(seed)
    return [(rng.random() < share, rng.getrandbits(64)) for _ in range(n)]


def test_interleaved_searches_are_recorded_with_teams_and_a_click_credits_its_team(tmp_path, two_runs):
    current, candidate = two_runs
    recorder = FeedbackRecorder(open_store(tmp_path / "f.db"), max_wait=0.05)
    app = create_app(current, feedback=recorder, experiment=Experiment(candidate, share=1.0, seed=11))
    try:
        with app_server(app) as base:
            answers = [search(base, q, k=4) for q in QUERIES]
            expected = []
            for q, answer, (inside, coins) in zip(QUERIES, answers, draws(11, 1.0, len(QUERIES)), strict=True):
                assert inside
                ours = [h.prompt.id for h in current.search(q, k=4)]
                theirs = [h.prompt.id for h in candidate.search(q, k=4)]
                mixed = team_draft(ours, theirs, 4, random.Random(coins))
                expected.append(mixed)
                assert [r["prompt"]["id"] for r in answer["results"]] == list(mixed.ids)
                assert [r["rank"] for r in answer["results"]] == [1, 2, 3, 4]
                assert "team" not in json.dumps(answer)  # kept server side, never shown
            assert any(set(m.teams) == {CURRENT, CANDIDATE} for m in expected)

            wait_for(lambda: len(recorder.store.experiment_records("run-b")) == len(QUERIES), what="records")
            records = recorder.store.experiment_records("run-b")
            by_id = {r.query_id: r for r in records}
            for answer, mixed in zip(answers, expected, strict=True):
                x = by_id[answer["query_id"]]
                assert (x.mode, x.arm, x.teams) == ("interleave", "interleaved", mixed.teams)
                assert (x.current_run, x.candidate_run) == ("run-a", "run-b")
                stored = recorder.store.query(answer["query_id"])
                assert stored.object_ids == mixed.ids and "interleaving" in stored.system

            # the writer opens (twice) and copies a result of the candidate's team on one search
            i = next(i for i, m in enumerate(expected) if CANDIDATE in m.teams)
            position = expected[i].teams.index(CANDIDATE) + 1
            query_id, pid = answers[i]["query_id"], expected[i].ids[position - 1]
            for action in ("open", "open", "copy"):
                r = httpx.post(base + "/api/events", json=event(query_id, action, pid, position))
                assert r.status_code == 202, r.text
            got = httpx.get(base + "/api/experiments", timeout=30).json()
            assert got["running"] == "run-b" and got["flushed"] is True
            (report,) = got["experiments"]
            assert report["interleave"]["wins"] == 1 and report["interleave"]["losses"] == 0
            assert report["interleave"]["no_clicks"] == len(QUERIES) - 1
            assert report["interleave"]["candidate_clicks"] == 1  # three events, one result
            offline = {o["run"]: o for o in report["offline"]}
            assert offline["run-a"]["dev_ndcg@10"] == 0.61 and offline["run-b"]["system"] == "run B"
            assert report["recommendation"]["decision"] == "undecided"

            r = httpx.get(base + "/api/experiments", params={"experiment": "nope"})
            assert r.status_code == 404 and "no experiment 'nope'" in r.json()["error"]
    finally:
        recorder.close()


def test_ab_splits_the_searches_by_the_seeded_draw(tmp_path, two_runs):
    current, candidate = two_runs
    recorder = FeedbackRecorder(open_store(tmp_path / "f.db"), max_wait=0.05)
    experiment = Experiment(candidate, share=0.5, mode="ab", name="ab-1", seed=5)
    app = create_app(current, feedback=recorder, experiment=experiment)
    n = 16
    plan = draws(5, 0.5, n)
    assert {inside for inside, _ in plan} == {True, False}  # this seed splits them
    try:
        with app_server(app) as base:
            answers = [search(base, QUERIES[i % len(QUERIES)], k=3) for i in range(n)]
            for i, (answer, (inside, _)) in enumerate(zip(answers, plan, strict=True)):
                answering = candidate if inside else current
                ids = [h.prompt.id for h in answering.search(QUERIES[i % len(QUERIES)], k=3)]
                assert [r["prompt"]["id"] for r in answer["results"]] == ids
            wait_for(lambda: len(recorder.store.experiment_records("ab-1")) == n, what="records")
            arms = {x.query_id: x.arm for x in recorder.store.experiment_records("ab-1")}
            assert [arms[a["query_id"]] for a in answers] == [CANDIDATE if inside else CURRENT for inside, _ in plan]
            runs = [recorder.store.query(a["query_id"]).run for a in answers]
            assert runs == ["run-b" if inside else "run-a" for inside, _ in plan]  # the run that answered

            first_candidate = next(a for a, (inside, _) in zip(answers, plan, strict=True) if inside)
            top = first_candidate["results"][0]["prompt"]["id"]
            assert httpx.post(base + "/api/events", json=event(first_candidate["query_id"], "use", top, 1)).is_success
            (report,) = httpx.get(base + "/api/experiments", params={"experiment": "ab-1"}).json()["experiments"]
            got = {a["arm"]: (a["searches"], a["clicked"]) for a in report["arms"]}
            in_share = sum(inside for inside, _ in plan)
            assert got == {"current": (n - in_share, 0), "candidate": (in_share, 1)}
    finally:
        recorder.close()


def test_an_experiment_needs_feedback_a_run_and_one_setup_per_name(tmp_path, two_runs, small_retriever):
    current, candidate = two_runs
    with pytest.raises(InputError, match="needs the feedback log"):
        create_app(current, experiment=Experiment(candidate, share=0.5))
    with pytest.raises(InputError, match="must be a run folder"):
        Experiment(small_retriever, share=0.5)
    for share, mode, message in ((0.0, "interleave", r"\(0, 1\]"), (1.0, "ab", "share below 1"), (0.5, "x", "use")):
        with pytest.raises(InputError, match=message):
            Experiment(candidate, share=share, mode=mode)
    recorder = FeedbackRecorder(open_store(tmp_path / "f.db"), max_wait=0.05)
    try:
        recorder.record_experiment(xrec(1, name="run-b", mode="ab", arm=CURRENT))
        assert recorder.flush()
        with pytest.raises(InputError, match="already holds experiment 'run-b' run in mode ab"):
            create_app(current, feedback=recorder, experiment=Experiment(candidate, share=0.5))
        # served by the candidate itself (promoted): answered as usual, nothing recorded
        app = create_app(candidate, feedback=recorder, experiment=Experiment(candidate, share=1.0, name="again"))
        with app_server(app) as base:
            answer = search(base, QUERIES[0], k=3)
            ids = [h.prompt.id for h in candidate.search(QUERIES[0], k=3)]
            assert [r["prompt"]["id"] for r in answer["results"]] == ids
            assert recorder.flush() and recorder.store.experiment_records("again") == []
    finally:
        recorder.close()


def test_serve_refuses_an_experiment_it_cannot_run(tmp_path, made_runs, small_corpus_path):
    db = str(tmp_path / "f.db")
    run_a, run_b = str(made_runs / "run-a"), str(made_runs / "run-b")
    cases = [
        (("--corpus", str(small_corpus_path), "--share", "0.5"), "--share set up an experiment"),
        (("--run", run_a, "--candidate", run_b), "--candidate needs --feedback"),
        (("--corpus", str(small_corpus_path), "--candidate", run_b, "--feedback", db), "compares two runs"),
        (("--run", run_a, "--candidate", run_b, "--feedback", db, "--share", "0"), "must be in (0, 1]"),
        (("--run", run_a, "--candidate", run_b, "--feedback", db, "--mode", "ab", "--share", "1"), "share below 1"),
        (("--run", run_a, "--candidate", run_b, "--feedback", db, "--mode", "bandit"), "use interleave or ab"),
        (("--runs", str(made_runs), "--candidate", run_a, "--feedback", db), "is the run served"),
        (("--run", run_a, "--candidate", str(tmp_path), "--feedback", db), "not a deployable run"),
    ]
    for args, message in cases:
        code, out = cli_run("serve", *args)
        assert code == 2 and message in out, (args, out)
    assert not Path(db).exists()  # refused before the store was opened


def test_serve_runs_with_a_candidate_answers_interleaved(tmp_path, made_runs):
    db = tmp_path / "f.db"
    args = ("--runs", str(made_runs), "--candidate", str(made_runs / "run-b"), "--feedback", str(db), "--share", "1")
    with running_server(*args) as base:
        answer = search(base, QUERIES[0], k=4)
        assert len(answer["results"]) == 4
        got = wait_for(lambda: httpx.get(base + "/api/experiments").json()["experiments"], what="a report")
        assert got[0]["experiment"] == "run-b" and got[0]["searches"] == 1 and got[0]["mode"] == "interleave"
        assert httpx.get(base + "/api/info").json()["run"] == "run-a"
