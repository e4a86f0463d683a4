"""A new run without downtime: the real `prompt-retriever serve --run` process switches to another run
(`POST /api/admin/reload`) and reloads its own run on SIGHUP, while a client keeps searching; not one
request fails, and /api/info names what is served afterwards. Real uvicorn, real model, small runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from server_util import Searcher, free_port, stop, wait_ready
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.search.retriever import PromptRetriever

TOKEN = "switch-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_prompts) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("switch")
    PromptRetriever().index(small_prompts).save_run(tmp / "run-a", {"label": "run A"})
    PromptRetriever(system="hybrid").index(small_prompts[:6]).save_run(tmp / "run-b", {"label": "run B"})
    return tmp / "run-a", tmp / "run-b"


def serve(run: Path, tmp_path: Path) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "prompt_retriever.cli", "serve", "--port", str(port), "--run", str(run)]
    env = {**os.environ, "PROMPT_RETRIEVER_ADMIN_TOKEN": TOKEN}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, proc, lambda: log.read_text(errors="replace"))
    return proc, base, log


def wait_until(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_reload_and_switch_under_load_fail_no_request(runs, tmp_path):
    run_a, run_b = runs
    run = tmp_path / "run-a"
    shutil.copytree(run_a, run)
    proc, base, log = serve(run, tmp_path)
    searcher = Searcher(base)
    try:
        assert httpx.get(base + "/api/info").json()["system"] == "run A"
        searcher.start()
        searcher.wait_for(10)
        # SIGHUP: the run served, changed on disk by `index add`, is read again
        new = tmp_path / "new.jsonl"
        row = {"id": "bell-1", "genre": "Horror", "theme": "Grief", "title": "The Drowned Bell", "text": "A bell."}
        new.write_text(json.dumps(row) + "\n")
        res = CliRunner().invoke(app, ["index", "add", "-c", str(new), "--run", str(run)])
        assert res.exit_code == 0, res.output
        assert httpx.get(base + "/api/info").json()["prompts"] == 8  # not reloaded yet
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: httpx.get(base + "/api/info").json()["prompts"] == 9)
        info = httpx.get(base + "/api/info").json()
        assert info["prompts"] == 9 and info["drift"] == {"added": 1, "updated": 0, "removed": 0}, info
        searcher.wait_for(10)
        # the endpoint: another run, built off the request path, swapped in
        r = httpx.post(base + "/api/admin/reload", json={"run": str(run_b)}, headers=AUTH, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["system"] == "run B" and r.json()["run"] == "run-b" and r.json()["prompts"] == 6
        searcher.wait_for(10)
        # a run that cannot be loaded leaves the current one serving; no token, no switch
        bad = httpx.post(base + "/api/admin/reload", json={"run": str(tmp_path)}, headers=AUTH, timeout=60)
        assert bad.status_code == 409 and "not a deployable run" in bad.json()["error"]
        assert httpx.post(base + "/api/admin/reload", json={"run": str(run_a)}).status_code == 401
        searcher.wait_for(10)
    finally:
        searcher.done.set()
        searcher.join(30)
        info = httpx.get(base + "/api/info").json()
        stop(proc)
    assert not searcher.failures, searcher.failures[:5]
    assert searcher.ok >= 30
    assert info["system"] == "run B" and info["kind"] == "hybrid" and info["prompts"] == 6, info
    assert "now serving run B" in log.read_text(errors="replace")
