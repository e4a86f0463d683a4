"""Output for files, pipes and logs: no wrapping at 80 columns, `search --json` in the API's shape, and a
server that prints its own lines, not the libraries' log lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import httpx
from server_util import free_port, stop, wait_ready
from typer.testing import CliRunner

from prompt_retriever.cli import app

runner = CliRunner()
LONG_THEME = "The Slow Return Of Everything That Was Lost Along The Coast Road In The Winter Of The Great Storm"


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    cmd = [sys.executable, "-m", "prompt_retriever.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, **kwargs)


def test_a_table_written_to_a_pipe_is_not_wrapped_at_80_columns(tmp_path):
    corpus = tmp_path / "long.txt"
    corpus.write_text(
        f"<Horror> </Horror> <{LONG_THEME}> </{LONG_THEME}> <A Title> </A Title> prompt A long-themed prompt.\n"
        "<Poetry> </Poetry> <Hope> </Hope> <Plain> </Plain> prompt A plain line.\n"
    )
    done = cli("corpus", "stats", "-c", str(corpus))
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if LONG_THEME in line]
    assert rows and "1" in rows[0].split(LONG_THEME)[1]  # the theme and its count on one line


def test_the_consoles_do_not_wrap_when_not_on_a_terminal():
    from prompt_retriever.cli.output import err, out

    with tempfile.TemporaryFile("w+") as fh:
        from rich.console import Console

        from prompt_retriever.cli.output import UNWRAPPED_WIDTH, _Console

        assert _Console(file=fh).width == UNWRAPPED_WIDTH
        assert Console(file=fh).width == 80  # rich's own default, which this avoids
    assert not out.is_terminal and out.width == UNWRAPPED_WIDTH and err.width == UNWRAPPED_WIDTH


def test_search_json_is_the_api_shape(small_corpus_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_RETRIEVER_CACHE_DIR", str(tmp_path / "cache"))  # a first indexing: a bar
    res = runner.invoke(app, ["search", "lonely lighthouse", "-k", "2", "--json", "-c", str(small_corpus_path)])
    assert res.exit_code == 0, res.output
    assert "embedding" in res.stderr  # the indexing's progress bar, on stderr
    doc = json.loads(res.stdout)  # stdout is the JSON document alone
    assert set(doc) == {"query", "k", "genre", "theme", "took_ms", "results"}
    assert doc["query"] == "lonely lighthouse" and doc["k"] == 2 and len(doc["results"]) == 2
    hit = doc["results"][0]
    assert set(hit) == {"rank", "score", "prompt"} and hit["rank"] == 1
    assert set(hit["prompt"]) == {"id", "genre", "theme", "title", "text", "kind"}


def test_serve_prints_no_library_log_lines(tmp_path, small_corpus_path):
    port = free_port()
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "prompt_retriever.cli", "serve", "--port", str(port), "-c", str(small_corpus_path),
           "-s", "hybrid"]  # fmt: skip
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ))
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc, log.read_text)
            assert httpx.get(base + "/api/search", params={"q": "ghost"}, timeout=30).status_code == 200
        finally:
            stop(proc)
    text = log.read_text()
    assert str(port) in text  # the server's own start-up line
    assert "Building index" not in text and "bm25s" not in text, text
