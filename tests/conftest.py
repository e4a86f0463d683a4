from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# Every cache the tests touch lives in a throw-away folder, never the user's cache dir.
_CACHE = Path(os.environ.get("PYTEST_PROMPT_CACHE", "/tmp")) / f"prompt-retriever-test-cache-{os.getpid()}"
os.environ["PROMPT_RETRIEVER_CACHE_DIR"] = str(_CACHE)
os.environ.pop("PROMPT_RETRIEVER_ALLOW_DOWNLOAD", None)
os.environ["HF_HUB_OFFLINE"] = "1"

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def small_corpus_path() -> Path:
    return DATA / "small_corpus.txt"


@pytest.fixture(scope="session")
def small_prompts(small_corpus_path):
    from prompt_retriever.corpus import load_corpus

    return load_corpus(small_corpus_path)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a non-loopback connection fails the test."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1")):
            return real_connect(self, address)
        raise AssertionError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def small_retriever(small_prompts):
    from prompt_retriever.search.retriever import PromptRetriever

    return PromptRetriever().index(small_prompts)
