"""The real server process: start-up, endpoints over HTTP, bad input never a 500."""

from __future__ import annotations

from pathlib import Path

import httpx
from server_util import running_server

DATA = Path(__file__).parent / "data"


def test_serve_command_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from prompt_retriever.cli import app

    res = CliRunner().invoke(app, ["index", "--out", str(tmp_path / "idx"), "--corpus", str(DATA / "small_corpus.txt")])
    assert res.exit_code == 0, res.output
    bad = CliRunner().invoke(app, ["serve", "--index", str(tmp_path / "idx"), "--event-loop", "twisted"])
    assert bad.exit_code == 2 and "twisted" in bad.output
    # uvloop here; every other server test runs the default asyncio loop
    with running_server("--index", str(tmp_path / "idx"), "--event-loop", "uvloop") as base:
        r = httpx.get(base + "/api/search", params={"q": "robot mechanic", "k": 2})
        assert r.status_code == 200 and r.json()["results"][0]["prompt"]["title"] == "Orbit of Small Repairs"
        assert httpx.get(base + "/api/facets").json()["total"] == 8
        for params in ({"q": ""}, {"q": "a", "k": "-1"}, {"q": "a" * 600}, {"q": "a", "genre": "\x00"}):
            r = httpx.get(base + "/api/search", params=params)
            assert 400 <= r.status_code < 500 and "error" in r.json()
        assert httpx.get(base + "/").status_code == 200
        # an oversized request line is refused by the HTTP layer (414, JSON), and the server keeps serving
        try:
            r = httpx.get(base + "/api/search", params={"q": "x" * 60_000})
            assert r.status_code == 414 and "too long" in r.json()["error"]
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            pass  # the server closed the connection before the client read the answer: also a refusal
        assert httpx.get(base + "/healthz").status_code == 200
