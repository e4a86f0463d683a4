from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_server import FakeChatServer, completion, run_llm_generate

from prompt_retriever.corpus import load_corpus
from prompt_retriever.golden.llm_queries import LLMConfig, LLMQueryGenerator, clean_queries
from prompt_retriever.llm import ChatClient, LLMError

KEY = "sk-test-PLANTED-KEY-0123456789"
FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


def script(*replies):
    """Responder that plays the given replies in order, then repeats the last."""

    def responder(body, n):
        return replies[min(n, len(replies)) - 1]

    return responder


OK = (200, {}, completion("haunted lighthouse\nghost story at sea"), 0.0)


def test_complete_sends_model_and_key():
    with FakeChatServer(script(OK)) as srv:
        c = ChatClient(srv.base_url, "tiny-model", api_key=KEY, **FAST)
        assert c.complete([{"role": "user", "content": "hi"}]) == "haunted lighthouse\nghost story at sea"
        assert srv.requests[0]["model"] == "tiny-model"
        assert srv.requests[0]["messages"][0]["content"] == "hi"
        assert srv.headers[0]["Authorization"] == f"Bearer {KEY}"


def test_retries_429_500_and_malformed_then_succeeds():
    replies = (
        (429, {"Retry-After": "0"}, b'{"error": "rate"}', 0.0),
        (500, {}, b"oops", 0.0),
        (200, {}, b"{not json", 0.0),
        (200, {}, b'{"choices": []}', 0.0),
        OK,
    )
    with FakeChatServer(script(*replies)) as srv:
        c = ChatClient(srv.base_url, "m", max_retries=5, **FAST)
        assert c.complete([{"role": "user", "content": "x"}]).startswith("haunted")
        assert len(srv.requests) == 5


def test_slow_response_times_out_and_is_retried():
    with FakeChatServer(script((200, {}, completion("late"), 1.0), OK)) as srv:
        c = ChatClient(srv.base_url, "m", timeout=0.3, max_retries=2, **FAST)
        assert c.complete([{"role": "user", "content": "x"}]).startswith("haunted")
        assert len(srv.requests) == 2


def test_clear_error_after_last_retry_without_the_key():
    with FakeChatServer(script((503, {}, b"down", 0.0))) as srv:
        c = ChatClient(srv.base_url, "m", api_key=KEY, max_retries=2, **FAST)
        with pytest.raises(LLMError) as exc:
            c.complete([{"role": "user", "content": "x"}])
        assert "after 3 attempts" in str(exc.value) and "HTTP 503" in str(exc.value)
        assert KEY not in str(exc.value) and KEY not in repr(c)
        assert len(srv.requests) == 3


def test_client_errors_are_not_retried_and_key_is_redacted():
    with FakeChatServer(script((401, {}, json.dumps({"error": f"bad key {KEY}"}).encode(), 0.0))) as srv:
        c = ChatClient(srv.base_url, "m", api_key=KEY, **FAST)
        with pytest.raises(LLMError, match="HTTP 401") as exc:
            c.complete([{"role": "user", "content": "x"}])
        assert KEY not in str(exc.value)
        assert len(srv.requests) == 1


def test_connection_refused_is_an_error_after_retries():
    c = ChatClient("http://127.0.0.1:9/v1", "m", max_retries=1, **FAST)
    with pytest.raises(LLMError, match="ConnectError"):
        c.complete([{"role": "user", "content": "x"}])


def test_clean_queries():
    raw = (
        '1. "Haunted lighthouse keeper"\n'
        "2) Find me a ghost story at sea.\n"
        "- query: grief by the ocean\n"
        "* haunted lighthouse keeper\n"
        "\n"
        "• The Keeper's Lamp horror story\n"
        "Search: " + "very " * 25 + "long\n"
        '""\n'
    )
    kept, dropped = clean_queries(raw, "The Keeper's Lamp")
    assert kept == ["Haunted lighthouse keeper", "ghost story at sea", "grief by the ocean"]
    assert dropped == {"duplicate": 1, "contains the title": 1, "too long": 1, "empty after cleaning": 1}


def title_responder(body, n):
    content = body["messages"][0]["content"]
    title = content.split("Title: ")[1].split("\n")[0]
    key = title[::-1].lower()  # unique per prompt, but not the title itself
    return (200, {}, completion(f"1. first query for {key}\n2. {title} exactly\n3. second query {key}"), 0)


@pytest.fixture
def prompts12():
    return load_corpus(Path(__file__).parent / "data" / "golden12.txt")


def test_generator_caches_and_builds_golden_set(tmp_path, prompts12):
    cfg = LLMConfig("", "tiny", queries_per_prompt=3, cache_dir=tmp_path / "cache", concurrency=3)
    with FakeChatServer(title_responder) as srv:
        cfg.base_url = srv.base_url
        gs, rep = LLMQueryGenerator(cfg).generate(prompts12, progress=False)
        assert len(srv.requests) == 12 and rep.generated == 12
        assert rep.dropped["contains the title"] == 12
        assert all(q.kind == "llm" and gs.qrels[q.id] == {q.source_id: 2} for q in gs.queries)
        # a re-run costs nothing
        gs2, rep2 = LLMQueryGenerator(cfg).generate(prompts12, progress=False)
        assert len(srv.requests) == 12 and rep2.from_cache == 12
        assert gs2.fingerprint() == gs.fingerprint()
    assert gs.manifest["parameters"]["model"] == "tiny"


def test_interrupted_run_resumes(tmp_path, prompts12):
    calls = {"n": 0}

    def flaky(body, n):
        calls["n"] += 1
        if "Dumpling" in body["messages"][0]["content"] or "Mixtape" in body["messages"][0]["content"]:
            return (500, {}, b"boom", 0.0)
        return title_responder(body, n)

    cfg = LLMConfig("", "tiny", cache_dir=tmp_path / "cache", max_retries=1, concurrency=2)
    with FakeChatServer(flaky) as srv:
        cfg.base_url = srv.base_url
        gen = LLMQueryGenerator(cfg)
        gen.client.backoff_base = 0.01
        with pytest.raises(LLMError, match="2 of 12 completions failed .*cached; re-run to resume"):
            gen.generate(prompts12, progress=False)
        assert len(list((tmp_path / "cache").rglob("*.json"))) == 10
        gs, rep = gen.generate(prompts12, progress=False, allow_partial=True)
        assert rep.from_cache == 10 and len(rep.failed) == 2
        assert len({q.source_id for q in gs.queries}) == 10
    # the endpoint recovers: only the two missing prompts are requested
    with FakeChatServer(title_responder) as srv2:
        cfg.base_url = srv2.base_url
        gs, rep = LLMQueryGenerator(cfg).generate(prompts12, progress=False)
        assert len(srv2.requests) == 2 and rep.from_cache == 10
        assert len({q.source_id for q in gs.queries}) == 12


def test_bad_template_fails_early(prompts12):
    with pytest.raises(ValueError, match="bad query template"):
        LLMQueryGenerator(LLMConfig("http://127.0.0.1:9/v1", "m", template="{nope}"))


def test_cli_llm_generate(tmp_path, monkeypatch):

    monkeypatch.setenv("PROMPT_RETRIEVER_LLM_API_KEY", KEY)
    corpus = Path(__file__).parent / "data" / "golden12.txt"
    with FakeChatServer(title_responder) as srv:
        res = run_llm_generate(srv.base_url, corpus, str(tmp_path / "g"))
        assert res.exit_code == 0, res.output
        assert srv.headers[0]["Authorization"] == f"Bearer {KEY}"
    for f in (tmp_path / "g").rglob("*"):
        if f.is_file():
            assert KEY not in f.read_text(encoding="utf-8"), f
    assert "dropped" in res.output


def test_corrupt_cache_entry_is_regenerated_with_a_warning(tmp_path, prompts12):
    cfg = LLMConfig("", "tiny", cache_dir=tmp_path / "cache")
    with FakeChatServer(title_responder) as srv:
        cfg.base_url = srv.base_url
        LLMQueryGenerator(cfg).generate(prompts12[:2], progress=False)
        victim = next((tmp_path / "cache").rglob("*.json"))
        victim.write_text('{"content": ')  # truncated by a crash or a full disk
        with pytest.warns(UserWarning, match="unreadable"):
            _, rep = LLMQueryGenerator(cfg).generate(prompts12[:2], progress=False)
        assert rep.from_cache == 1 and rep.generated == 1 and len(srv.requests) == 3
