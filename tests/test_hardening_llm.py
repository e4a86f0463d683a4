"""The LLM client against hostile or dead endpoints: a total deadline per request (not per read), a
circuit breaker after consecutive connection failures, and a cap on the response size."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from llm_server import DRIP, NO_LENGTH, FakeChatServer, HangUpServer, closed_port_url, completion, run_llm_generate

from prompt_retriever.llm import ChatClient, LLMError

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}
MSG = [{"role": "user", "content": "x"}]


def fixed(reply):
    return lambda body, n: reply


def test_one_byte_a_second_hits_the_total_deadline():
    with FakeChatServer(fixed((200, {DRIP: "0.2"}, completion("late"), 0.0))) as srv:
        c = ChatClient(srv.base_url, "m", timeout=1.0, max_retries=0, **FAST)
        t0 = time.monotonic()
        with pytest.raises(LLMError, match="deadline"):
            c.complete(MSG)
        assert time.monotonic() - t0 < 2.5


def test_deadline_is_retried_and_a_fast_answer_still_wins():
    replies = [(200, {DRIP: "0.2"}, completion("late"), 0.0), (200, {}, completion("quick"), 0.0)]
    with FakeChatServer(lambda body, n: replies[min(n, 2) - 1]) as srv:
        c = ChatClient(srv.base_url, "m", timeout=0.8, max_retries=1, **FAST)
        assert c.complete(MSG) == "quick"


def test_circuit_breaker_stops_hammering_a_dead_endpoint():
    with HangUpServer() as srv:
        c = ChatClient(srv.base_url, "m", max_retries=5, breaker_after=5, **FAST)
        errors = []
        for _ in range(20):
            with pytest.raises(LLMError) as exc:
                c.complete(MSG)
            errors.append(str(exc.value))
        assert srv.accepted == 5  # five tries in all, then no more connections
        assert all("circuit open" in e and "5 consecutive connection failures" in e for e in errors[1:])


def test_closed_port_fails_fast_for_the_whole_corpus(tmp_path):
    corpus = Path(__file__).parent / "data" / "golden12.txt"
    t0 = time.monotonic()
    res = run_llm_generate(closed_port_url(), corpus, str(tmp_path / "g"), "--retries", "5", "--timeout", "3")
    took = time.monotonic() - t0
    assert res.exit_code == 2, res.output
    assert "circuit open" in res.output and "Traceback" not in res.output
    assert took < 15  # one prompt's retries (backoff up to 0.5+1+2+4 s), then fail fast


def test_a_50_mb_completion_is_refused_not_read_whole():
    big = completion("y" * 50_000_000)
    with FakeChatServer(fixed((200, {}, big, 0.0))) as srv:
        c = ChatClient(srv.base_url, "m", max_retries=3, **FAST)
        t0 = time.monotonic()
        with pytest.raises(LLMError, match="larger than"):
            c.complete(MSG)
        assert time.monotonic() - t0 < 5
        assert len(srv.requests) == 1  # the same request would get the same answer: not retried


def test_size_cap_without_content_length():
    with FakeChatServer(fixed((200, {NO_LENGTH: "1"}, completion("z" * 3_000_000), 0.0))) as srv:
        c = ChatClient(srv.base_url, "m", max_retries=0, **FAST)
        with pytest.raises(LLMError, match="larger than"):
            c.complete(MSG)
    with FakeChatServer(fixed((200, {NO_LENGTH: "1"}, completion("small"), 0.0))) as srv:
        assert ChatClient(srv.base_url, "m", max_retries=0, **FAST).complete(MSG) == "small"
