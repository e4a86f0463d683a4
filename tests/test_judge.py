from __future__ import annotations

import json
from pathlib import Path

from llm_server import FakeChatServer, completion
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.corpus import load_corpus
from prompt_retriever.evaluation.judge import Judge
from prompt_retriever.llm import ChatClient

DATA = Path(__file__).parent / "data"


def horror_judge(body, n):
    """Judges a result relevant when it is a Horror prompt; answers one in seven with nonsense."""
    content = body["messages"][0]["content"]
    if "Mourning Doll" in content:
        return (200, {}, completion("Perhaps, it depends."), 0.0)
    return (200, {}, completion("Yes." if "Genre: Horror" in content else "No"), 0.0)


def test_context_relevance_is_judged_cached_and_never_guessed(tmp_path):
    prompts = {p.id: p for p in load_corpus(DATA / "golden12.txt")}
    horror = [p.id for p in prompts.values() if p.genre == "Horror"]
    romance = [p.id for p in prompts.values() if p.genre == "Romance"]
    run = {"q1": {horror[0]: 0.9, horror[1]: 0.8, romance[0]: 0.7, romance[1]: 0.6}}
    with FakeChatServer(horror_judge) as srv:
        judge = Judge(ChatClient(srv.base_url, "judge-model", max_retries=0), cache_dir=tmp_path)
        scores = judge.context_relevance([("q1", "scary stories")], run, prompts, k=4)
        assert scores == {"q1": 0.5} and judge.calls == 4
        assert srv.requests[0]["temperature"] == 0.0
        again = Judge(ChatClient(srv.base_url, "judge-model"), cache_dir=tmp_path)
        assert again.context_relevance([("q1", "scary stories")], run, prompts, k=4) == {"q1": 0.5}
        assert again.calls == 0 and len(srv.requests) == 4  # all from the cache
        doll = next(p.id for p in prompts.values() if p.title == "Mourning Doll")
        judge.context_relevance([("q2", "dolls")], {"q2": {doll: 1.0, horror[0]: 0.5}}, prompts, k=2)
        assert judge.unjudged == 1  # "Perhaps" is not counted either way


def test_evaluate_cli_with_llm_judge(tmp_path):
    r = CliRunner()
    g = tmp_path / "g"
    assert (
        r.invoke(app, ["queries", "generate", "--corpus", str(DATA / "golden12.txt"), "--out", str(g)]).exit_code == 0
    )
    assert r.invoke(app, ["queries", "split", str(g), "--test", "0.25", "--dev", "0.25"]).exit_code == 0
    with FakeChatServer(horror_judge) as srv:
        res = r.invoke(
            app,
            [
                "evaluate",
                "--golden",
                str(g),
                "-s",
                "bm25",
                "--out",
                str(tmp_path / "rep"),
                "--no-plots",
                "--bootstrap",
                "200",
                "--permutations",
                "200",
                "--judge-base-url",
                srv.base_url,
                "--judge-model",
                "j",
                "--judge-k",
                "3",
            ],
        )
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    judged = data["systems"]["bm25"]["extra"]["llm_context_relevance@3"]
    assert 0 <= judged["ci_low"] <= judged["mean"] <= judged["ci_high"] <= 1 and judged["queries_judged"] > 0
    assert "LLM-judged context relevance" in (tmp_path / "rep" / "report.md").read_text()
    res = r.invoke(app, ["evaluate", "--golden", str(g), "--out", str(tmp_path / "x"), "--judge-model", "j"])
    assert res.exit_code == 2 and "needs both --judge-base-url and --judge-model" in res.output
