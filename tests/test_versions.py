"""Versions of a runs folder: `promote`, `rollback` and `history` through the real CLI over real run folders
(history lines, current.json, who/when/fingerprints, refusals), and the real `prompt-retriever serve --runs`
process switching on promote and rollback while a client keeps searching: not one request fails, and
/api/info names the run, when it was made, its model and since when it is current. No mocks."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from server_util import Searcher, free_port, stop, wait_ready
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.errors import InputError
from prompt_retriever.search.retriever import PromptRetriever
from prompt_retriever.search.versions import promote, read_current, read_history

runner = CliRunner()


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory, small_prompts, small_retriever) -> Path:
    """Two complete runs (run-a: dense over 8 prompts, run-b: hybrid over 6), to be copied per test."""
    tmp = tmp_path_factory.mktemp("versions")
    small_retriever.save_run(tmp / "run-a", {"label": "run A"})
    PromptRetriever(system="hybrid").index(small_prompts[:6]).save_run(tmp / "run-b", {"label": "run B"})
    return tmp


@pytest.fixture
def runs(made_runs, tmp_path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    for name in ("run-a", "run-b"):
        shutil.copytree(made_runs / name, d / name)
    return d


def cli(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args), terminal_width=200)
    return res.exit_code, res.output


def system(run: Path) -> dict:
    return json.loads((run / "system.json").read_text())


# ----------------------------------------------------------------------------- promote, rollback, history


def test_promote_rollback_and_history(runs):
    code, out = cli("promote", str(runs / "run-a"), "--by", "alice")
    assert code == 0, out
    assert "run-a is now the current run" in out
    current = json.loads((runs / "current.json").read_text())
    assert current["run"] == "run-a" and current["by"] == "alice" and current["previous"] is None
    assert current["model_fingerprint"] == system(runs / "run-a")["model_fingerprint"]
    assert current["corpus_fingerprint"] == system(runs / "run-a")["corpus_fingerprint"]

    code, out = cli("promote", str(runs / "run-b"))  # by: the OS user, from the user database
    assert code == 0, out
    assert "(was run-a)" in out
    code, out = cli("rollback", str(runs), "--by", "bob")
    assert code == 0, out
    assert "run-a is now the current run (was run-b)" in out

    entries = read_history(runs)
    assert [(e.action, e.run, e.previous, e.by, e.seq) for e in entries] == [
        ("promote", "run-a", None, "alice", 1),
        ("promote", "run-b", "run-a", pwd.getpwuid(os.getuid()).pw_name, 2),
        ("rollback", "run-a", "run-b", "bob", 3),
    ]
    assert entries[1].corpus_fingerprint == system(runs / "run-b")["corpus_fingerprint"]
    assert entries[1].corpus_fingerprint != entries[0].corpus_fingerprint
    assert all(e.at.endswith("+00:00") for e in entries)
    assert read_current(runs) == entries[-1]  # current.json is the last change
    assert len((runs / "history.jsonl").read_text().splitlines()) == 3  # appended, one line each

    code, out = cli("history", str(runs), "--json")
    assert code == 0, out
    assert [e["run"] for e in json.loads(out)] == ["run-a", "run-b", "run-a"]
    code, out = cli("history", str(runs))
    assert code == 0 and "current: run-a since" in out and "rollback" in out

    # back past the first promote: nothing there; promoting the current run: nothing to do
    code, out = cli("rollback", str(runs))
    assert code == 2 and "nothing to roll back to (run-a is the first run promoted here)" in out
    code, out = cli("promote", str(runs / "run-a"))
    assert code == 2 and "already the current run" in out
    assert len(read_history(runs)) == 3


def test_refusals_leave_the_current_run_as_it_was(runs, tmp_path):
    assert cli("promote", str(runs / "run-a"))[0] == 0
    before = (runs / "current.json").read_bytes()
    (runs / "empty").mkdir()
    (runs / "half").mkdir()
    shutil.copy(runs / "run-a" / "system.json", runs / "half" / "system.json")  # no index beside it
    (runs / "forged").mkdir()
    (runs / "forged" / "system.json").write_text('{"format": 1, "kind": "dense"}')
    (runs / "link").symlink_to(runs / "run-b")
    cases = {
        "empty": "not a deployable run (no system.json)",
        "half": "incomplete run: its index folder 'index' is missing",
        "forged": "a non-empty string expected",
        "link": "not a run (a link)",
        "missing": "not a run (no such folder)",
    }
    for name, message in cases.items():
        code, out = cli("promote", str(runs / name))
        assert code == 2 and message in out, (name, out)
        assert "Traceback" not in out
    code, out = cli("promote", str(runs / "run-b"), "--by", "\x1b[31mred")
    assert code == 2 and "printable characters" in out and "\x1b" not in out
    assert (runs / "current.json").read_bytes() == before

    # the run to roll back to was deleted: refused, the current one stays
    assert cli("promote", str(runs / "run-b"))[0] == 0
    shutil.rmtree(runs / "run-a")
    code, out = cli("rollback", str(runs))
    assert code == 2 and "cannot roll back to run-a, run-b stays current" in out
    assert read_current(runs).run == "run-b"

    # a history line cut off by a crash is left out, and the next change starts on a line of its own
    with open(runs / "history.jsonl", "a") as fh:
        fh.write('{"action": "promote", "ru')
    assert cli("promote", str(runs / "link"))[0] == 2
    shutil.copytree(runs / "run-b", runs / "run-c")
    code, out = cli("promote", str(runs / "run-c"))
    assert code == 0, out
    assert [e.run for e in read_history(runs)] == ["run-a", "run-b", "run-c"]
    # a line damaged in the middle is named, never guessed at
    lines = (runs / "history.jsonl").read_text().splitlines()
    (runs / "history.jsonl").write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    code, out = cli("rollback", str(runs))
    assert code == 2 and "history.jsonl: line 2 is not JSON" in out
    # current.json naming a path out of the folder is refused by whoever reads it
    (runs / "current.json").write_text(json.dumps({**json.loads(before), "run": "../elsewhere"}))
    code, out = cli("serve", "--runs", str(runs), "--port", str(free_port()))
    assert code == 2 and "a plain folder name expected" in out


def test_serve_runs_needs_a_current_run(runs):
    code, out = cli("serve", "--runs", str(runs), "--port", str(free_port()))
    assert code == 2 and "no current run yet; `prompt-retriever promote" in out
    code, out = cli("serve", "--runs", str(runs), "--run", str(runs / "run-a"))
    assert code == 2 and "--runs and --run cannot be used together" in out


# ----------------------------------------------------------------------------- serve --runs under load


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def footer_line(base: str) -> str:
    """The text of the page's run line in a real Chromium (Playwright), once the page has read /api/info."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(base + "/")
            page.wait_for_selector("#system-info[data-state]", state="attached")
            assert page.locator("#run-info").is_visible() and page.locator("#run-info *").count() == 0
            return page.locator("#run-info").text_content()
        finally:
            browser.close()


def wait_for_run(base: str, name: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = httpx.get(base + "/api/info", timeout=10).json()
        if info["run"] == name:
            return info
        time.sleep(0.1)
    raise AssertionError(f"the server did not switch to {name}: {info}")


def test_serve_runs_switches_on_promote_and_rollback_without_a_failed_request(runs, tmp_path):
    assert cli("promote", str(runs / "run-a"), "--by", "alice")[0] == 0
    port, log = free_port(), tmp_path / "server.log"
    cmd = [sys.executable, "-m", "prompt_retriever.cli", "serve", "--port", str(port), "--runs", str(runs)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    searcher = Searcher(base)
    try:
        wait_ready(base, proc, lambda: log.read_text(errors="replace"))
        info = httpx.get(base + "/api/info").json()
        current = read_current(runs)
        assert info["run"] == "run-a" and info["system"] == "run A"
        assert info["current_since"] == current.at
        assert info["model_fingerprint"] == system(runs / "run-a")["model_fingerprint"]
        assert info["created"] and info["created"] <= current.at
        searcher.start()
        searcher.wait_for(10)

        assert cli("promote", str(runs / "run-b"))[0] == 0
        info = wait_for_run(base, "run-b")
        assert info["system"] == "run B" and info["prompts"] == 6 and info["current_since"] == read_current(runs).at
        if CHROMIUM:  # the page's quiet footer line says which run answers, and since when
            assert footer_line(base) == (
                f"run run-b · made {info['created'][:10]} · current since {info['current_since'][:10]} · "
                f"model {info['model_fingerprint']}"
            )
        searcher.wait_for(10)

        assert cli("rollback", str(runs))[0] == 0
        info = wait_for_run(base, "run-a")
        assert info["prompts"] == 8 and info["current_since"] == read_current(runs).at
        searcher.wait_for(10)

        # a promoted run that cannot be loaded: logged, the old one keeps serving
        shutil.copytree(runs / "run-b", runs / "run-d")
        assert cli("promote", str(runs / "run-d"))[0] == 0
        (runs / "run-d" / "index" / "embeddings.npy").write_bytes(b"damaged")
        deadline = time.monotonic() + 30
        while "cannot switch to run-d" not in log.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.1)
        searcher.wait_for(10)
        assert httpx.get(base + "/api/info").json()["run"] == "run-a"
    finally:
        searcher.done.set()
        searcher.join(30)
        stop(proc)
    text = log.read_text(errors="replace")
    assert not searcher.failures, searcher.failures[:5]
    assert searcher.ok >= 30
    assert "now serving run B" in text and "cannot switch to run-d, still serving run-a" in text


def test_a_history_line_that_is_not_utf8_is_an_error_naming_it(tmp_path):
    (tmp_path / "history.jsonl").write_bytes(b'\n{"by": "\xff"}\n')
    with pytest.raises(InputError, match=r"history.jsonl: line 2 is not UTF-8"):
        read_history(tmp_path)


def test_a_failed_switch_is_tried_again_and_shown_until_it_succeeds(small_prompts, tmp_path):
    """serve --runs's watcher, in process over real (BM25) runs: the promoted run cannot be loaded (its
    index is away), so the old run keeps serving while /api/info and /metrics say it is not the current
    one; once the index is back the watcher's next try switches, with no new promote."""
    from fastapi.testclient import TestClient
    from feedback_util import wait_for

    from prompt_retriever.serving.api import create_app
    from prompt_retriever.serving.watch import RunsWatcher

    runs = tmp_path / "runs"
    for name in ("run-x", "run-y"):
        PromptRetriever(system="bm25").index(small_prompts).save_run(runs / name, {"label": name})
    promote(runs / "run-x", by="test")
    app = create_app(PromptRetriever.from_run(runs / "run-x"), loader=PromptRetriever.from_run)
    client = TestClient(app)
    index = runs / "run-y" / system(runs / "run-y")["index"]
    promote(runs / "run-y", by="test")
    index.rename(tmp_path / "away")
    watcher = RunsWatcher(app.state.live, runs, interval=0.05)
    assert not watcher.check()
    info = client.get("/api/info").json()
    assert info["run"] == "run-x" and info["current_run"] == "run-y"
    assert "prompt_retriever_run_served_is_current 0.0" in client.get("/metrics").text
    (tmp_path / "away").rename(index)
    wait_for(watcher.check, timeout=10, what="the switch tried again")
    info = client.get("/api/info").json()
    assert info["run"] == "run-y" and info["current_run"] == "run-y"
    assert "prompt_retriever_run_served_is_current 1.0" in client.get("/metrics").text
