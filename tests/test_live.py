"""Live collections: prompts added, updated and removed in a saved index or a run's, through the CLI and
the API, persisted atomically and read back from disk; a run that drifted is served and says so; the
write endpoints are off without a token and refuse a wrong one. Real model, real files, no mocks."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.corpus import Prompt, write_corpus
from prompt_retriever.errors import IndexLoadError, InputError, MissingError
from prompt_retriever.search.live import Drift, plan_changes, prompt_from_record
from prompt_retriever.search.retriever import PromptRetriever
from prompt_retriever.search.spec import SystemSpec
from prompt_retriever.serving.api import create_app

runner = CliRunner()
TOKEN = "a-long-enough-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BELL = {"genre": "Horror", "theme": "Grief", "title": "The Drowned Bell", "text": "A church bell rings under the lake."}


def jsonl(path: Path, *rows: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base_index(tmp_path_factory, small_corpus_path) -> Path:
    d = tmp_path_factory.mktemp("live") / "idx"
    res = runner.invoke(app, ["index", "-c", str(small_corpus_path), "--out", str(d)])
    assert res.exit_code == 0, res.output
    return d


@pytest.fixture
def idx(base_index, tmp_path) -> Path:
    shutil.copytree(base_index, tmp_path / "idx")
    return tmp_path / "idx"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, small_prompts) -> Path:
    run = tmp_path_factory.mktemp("live-run") / "run"
    write_corpus(small_prompts, run / "corpus.jsonl")
    PromptRetriever(system="hybrid").index(small_prompts).save_run(run, {"label": "a live run", "test_ndcg@10": 0.5})
    return run


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    shutil.copytree(base_run, tmp_path / "run")
    return tmp_path / "run"


# ----------------------------------------------------------------------------- the drift record


def test_drift_counts_net_changes_by_id():
    a, b = Prompt("a", "G", "T", "A", "x"), Prompt("b", "G", "T", "B", "y")
    d = Drift()
    d.note_put(None, Prompt("n", "G", "T", "N", "z"), since="fp")
    d.note_remove(Prompt("n", "G", "T", "N", "z"), since="fp")  # added then removed: nothing
    d.note_put(a, Prompt("a", "G", "T", "A", "changed"), since="fp")
    d.note_put(Prompt("a", "G", "T", "A", "changed"), a, since="fp")  # updated back: nothing
    assert not d and d.counts() == {"added": 0, "updated": 0, "removed": 0}
    d.note_remove(b, since="fp")
    d.note_put(None, Prompt("b", "G", "T", "B", "other"), since="fp")  # removed, then back changed: updated
    assert d.counts() == {"added": 0, "updated": 1, "removed": 0} and d.since == "fp"


def test_clashes_and_record_rules(small_prompts):
    existing = {p.id: p for p in small_prompts}
    p = small_prompts[0]
    with pytest.raises(InputError, match="id clash"):
        plan_changes(existing, [p, p])
    with pytest.raises(InputError, match="id clash.*--new-only"):
        plan_changes(existing, [p], new_only=True)
    with pytest.raises(InputError, match="title clash"):
        plan_changes(existing, [Prompt("other-id", "G", "T", p.title.upper(), "x")])
    changes = plan_changes(existing, [p, Prompt("fresh", "G", "T", "Fresh", "x")])
    assert [x.id for x in changes.added] == ["fresh"] and changes.unchanged == [p] and not changes.updated
    with pytest.raises(InputError, match="missing or empty field.*text"):
        prompt_from_record("x1", {**BELL, "text": "  "})
    with pytest.raises(InputError, match="unknown field"):
        prompt_from_record("x1", {**BELL, "score": "9"})
    assert prompt_from_record("x1", {**BELL, "title": "  The   Drowned Bell "}).title == "The Drowned Bell"


# ----------------------------------------------------------------------------- the CLI


def test_index_add_update_remove_through_the_cli(idx, tmp_path):
    mode = stat.S_IMODE(idx.stat().st_mode)
    new = jsonl(tmp_path / "new.jsonl", {"id": "bell-1", **BELL})
    res = runner.invoke(app, ["index", "add", "-c", str(new), "--index", str(idx)])
    assert res.exit_code == 0 and "added 1, updated 0" in res.output, res.output
    r = PromptRetriever.load(idx)  # from disk
    assert len(r) == 9 and r.search("a bell ringing under a lake", k=1)[0].prompt.id == "bell-1"
    assert r.describe()["drift"] == {"added": 1, "updated": 0, "removed": 0}

    changed = jsonl(tmp_path / "upd.jsonl", {"id": "bell-1", **BELL, "text": "A bell rings at the bottom of a well."})
    res = runner.invoke(app, ["index", "add", "-c", str(changed), "--index", str(idx)])
    assert res.exit_code == 0 and "added 0, updated 1" in res.output, res.output
    assert PromptRetriever.load(idx).get("bell-1").text.endswith("of a well.")

    first = r.prompts[0].id
    res = runner.invoke(app, ["index", "remove", first, "bell-1", "--index", str(idx)])
    assert res.exit_code == 0 and "removed 2" in res.output, res.output
    r = PromptRetriever.load(idx)
    assert len(r) == 7 and r.get(first) is None and r.describe()["drift"] == {"added": 0, "updated": 0, "removed": 1}
    # the folder keeps its permissions, and no scratch folder is left beside it
    assert stat.S_IMODE(idx.stat().st_mode) == mode
    assert sorted(p.name for p in idx.parent.iterdir() if p.name.startswith(".idx.")) == [".idx.lock"]
    # the old command still builds an index
    res = runner.invoke(app, ["index", "-c", str(new), "--out", str(tmp_path / "fresh")])
    assert res.exit_code == 0 and len(PromptRetriever.load(tmp_path / "fresh")) == 1


def test_cli_errors_are_clear_and_change_nothing(idx, tmp_path):
    before = (idx / "manifest.json").read_bytes()
    res = runner.invoke(app, ["index", "remove", "no-such-id", "--index", str(idx)])
    assert res.exit_code == 2 and "unknown prompt id" in res.output and "no-such-id" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x1", **BELL}) + "\n" + json.dumps({"id": "x2", "genre": "Horror"}) + "\n")
    res = runner.invoke(app, ["index", "add", "-c", str(bad), "--index", str(idx)])
    assert res.exit_code == 2 and f"{bad}:2: error: missing or empty" in res.output.replace("\n", "")
    twice = jsonl(tmp_path / "twice.jsonl", {"id": "x1", **BELL}, {"id": "x1", **BELL, "title": "Another"})
    res = runner.invoke(app, ["index", "add", "-c", str(twice), "--index", str(idx)])
    assert res.exit_code == 2 and "duplicate id 'x1'" in res.output and f"{twice}:2" in res.output
    existing = PromptRetriever.load(idx).prompts[0]
    taken = jsonl(tmp_path / "taken.jsonl", {"id": existing.id, **BELL})
    res = runner.invoke(app, ["index", "add", "-c", str(taken), "--index", str(idx), "--new-only"])
    assert res.exit_code == 2 and "id clash" in res.output
    res = runner.invoke(app, ["index", "remove", "x", "--index", str(idx), "--run", str(idx)])
    assert res.exit_code == 2 and "either --index" in res.output
    assert (idx / "manifest.json").read_bytes() == before


# ----------------------------------------------------------------------------- runs that drifted


def test_a_run_changed_live_is_served_and_says_how_far_it_drifted(run, tmp_path):
    new = jsonl(tmp_path / "new.jsonl", {"id": "bell-1", **BELL})
    res = runner.invoke(app, ["index", "add", "-c", str(new), "--run", str(run)])
    assert res.exit_code == 0 and "since its system was chosen: 1 added" in res.output, res.output
    victim = PromptRetriever.from_run(run).prompts[0].id
    assert runner.invoke(app, ["index", "remove", victim, "--run", str(run)]).exit_code == 0
    r = PromptRetriever.from_run(run)  # served, not refused
    info = r.describe()
    assert info["system"] == "a live run" and info["drift"] == {"added": 1, "updated": 0, "removed": 1}
    assert info["run"] == "run" and len(r) == 8
    res = runner.invoke(app, ["search", "bell under a lake", "--run", str(run), "-k", "1", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["results"][0]["prompt"]["id"] == "bell-1"
    assert "1 prompt(s) added, 0 updated, 1 removed since this system was chosen" in res.stderr
    body = TestClient(create_app(r)).get("/api/info").json()
    assert body["drift"] == {"added": 1, "updated": 0, "removed": 1} and body["test_ndcg@10"] == 0.5
    assert (body["engine"], body["fusion"], body["fusion_depth"]) == ("exact", "corpus", None)


@pytest.mark.parametrize(
    ("system", "said"),
    [
        (SystemSpec("hybrid", fusion="candidates", depth=30), ("candidates", 30)),
        (SystemSpec("hybrid-adaptive"), ("corpus", None)),
        (SystemSpec("dense"), (None, None)),
        (SystemSpec("hybrid-rrf"), (None, None)),  # not a weighted hybrid: nothing normalised, no fusion said
    ],
)
def test_api_info_says_how_the_served_hybrid_fuses(small_prompts, system, said):
    body = TestClient(create_app(PromptRetriever(system=system).index(small_prompts[:4]))).get("/api/info").json()
    assert (body["fusion"], body["fusion_depth"]) == said and body["kind"] == system.kind


def test_a_run_whose_index_was_swapped_by_hand_is_still_refused(run, tmp_path, small_prompts):
    other = PromptRetriever(system="hybrid").index(small_prompts[:5])
    shutil.rmtree(run / "index")
    other.save(run / "index", model_path=None)
    with pytest.raises(IndexLoadError, match="another corpus.*no record of live updates"):
        PromptRetriever.from_run(run)


def test_a_forged_drift_record_is_refused(idx, tmp_path):
    new = jsonl(tmp_path / "new.jsonl", {"id": "bell-1", **BELL})
    assert runner.invoke(app, ["index", "add", "-c", str(new), "--index", str(idx)]).exit_code == 0
    drift = json.loads((idx / "drift.json").read_text())
    os.unlink(idx / "drift.json")
    (idx / "drift.json").write_text(json.dumps({**drift, "added": 0}))
    with pytest.raises(IndexLoadError, match="drift.json: checksum mismatch"):
        PromptRetriever.load(idx)


# ----------------------------------------------------------------------------- the API


def test_write_routes_do_not_exist_without_a_token(idx):
    """No token: the reload route is a 404; PUT and DELETE on a prompt get the 405 of any method the
    prompt route does not answer (`Allow: GET, HEAD`, as tests/test_hardening_api.py requires)."""
    client = TestClient(create_app(PromptRetriever.load(idx)))
    before = (idx / "manifest.json").read_bytes()
    for r in (
        client.put("/api/prompts/bell-1", json=BELL, headers=AUTH),
        client.put("/api/prompts/bell-1", content=b"not json"),
        client.delete("/api/prompts/anything", headers=AUTH),
    ):
        assert r.status_code == 405 and {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "HEAD"}
    assert client.post("/api/admin/reload", headers=AUTH).status_code == 404
    assert (idx / "manifest.json").read_bytes() == before
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/admin/reload" not in paths and set(paths["/api/prompts/{prompt_id}"]) == {"get"}


def test_write_routes_refuse_a_missing_or_wrong_token(idx):
    client = TestClient(create_app(PromptRetriever.load(idx), admin_token=TOKEN))
    before = (idx / "manifest.json").read_bytes()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}):
        r = client.put("/api/prompts/bell-1", json=BELL, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", headers
        assert client.delete("/api/prompts/bell-1", headers=headers).status_code == 401
        assert client.post("/api/admin/reload", headers=headers).status_code == 401
    assert client.put("/api/prompts/bell-1", content=b"{", headers={}).status_code == 401  # before the body
    assert (idx / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("engine", ["exact", "edge"])
def test_put_and_delete_through_the_api_are_persisted(idx, engine):
    client = TestClient(create_app(PromptRetriever.load(idx, engine=engine), admin_token=TOKEN))
    r = client.put("/api/prompts/bell-1", json=BELL, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "added" and r.json()["prompts"] == 9, r.text
    assert r.json()["drift"] == {"added": 1, "updated": 0, "removed": 0}
    hits = client.get("/api/search", params={"q": "bell under a lake", "k": 1}).json()["results"]
    assert hits[0]["prompt"]["id"] == "bell-1" and client.get("/api/prompts/bell-1").status_code == 200
    assert PromptRetriever.load(idx).get("bell-1").title == "The Drowned Bell"  # on disk before the answer

    assert client.put("/api/prompts/bell-1", json=BELL, headers=AUTH).json()["status"] == "unchanged"
    r = client.put("/api/prompts/bell-1", json={**BELL, "text": "A bell in a well."}, headers=AUTH)
    assert r.json()["status"] == "updated" and PromptRetriever.load(idx).get("bell-1").text == "A bell in a well."
    assert client.get("/api/info").json()["drift"] == {"added": 1, "updated": 0, "removed": 0}

    bad = client.put("/api/prompts/bell-2", json={**BELL, "text": " "}, headers=AUTH)
    assert bad.status_code == 422 and "text" in bad.json()["error"]
    assert client.put("/api/prompts/bell-2", json={**BELL, "extra": "x"}, headers=AUTH).status_code == 422
    clash = client.put("/api/prompts/bell-2", json=BELL, headers=AUTH)  # the same title under another id
    assert clash.status_code == 409 and "title clash" in clash.json()["error"]
    assert client.put("/api/prompts/_bad", json=BELL, headers=AUTH).status_code == 422

    first = PromptRetriever.load(idx).prompts[0].id
    r = client.delete(f"/api/prompts/{first}", headers=AUTH)
    assert r.status_code == 200 and r.json()["drift"] == {"added": 1, "updated": 0, "removed": 1}
    assert client.get(f"/api/prompts/{first}").status_code == 404
    assert client.delete("/api/prompts/no-such", headers=AUTH).status_code == 404
    on_disk = PromptRetriever.load(idx)
    assert on_disk.get(first) is None and len(on_disk) == 8
    assert on_disk.describe()["drift"] == {"added": 1, "updated": 0, "removed": 1}
    if engine == "edge":  # the engine index was updated in place (not rebuilt) and saved with the index
        again = PromptRetriever.load(idx, engine="edge")
        assert len(again.engine) == 8 and again.engine.source == again._engine_source()
        assert [h.prompt.id for h in again.search("bell in a well", k=1)] == ["bell-1"]


def test_a_server_of_a_corpus_has_nowhere_to_write(small_prompts):
    from prompt_retriever.serving.server import build_retriever

    client = TestClient(create_app(build_retriever(prompts=small_prompts), admin_token=TOKEN))
    r = client.put("/api/prompts/bell-1", json=BELL, headers=AUTH)
    assert r.status_code == 409 and "--index" in r.json()["error"]


def test_library_remove_of_an_unknown_id(small_prompts):
    r = PromptRetriever().index(small_prompts)
    with pytest.raises(MissingError, match="unknown prompt id"):
        r.remove(["nope"])
    with pytest.raises(InputError, match="duplicate prompt id"):
        r.add([Prompt("x", "G", "T", "X", "x"), Prompt("x", "G", "T", "Y", "y")])


def test_a_request_body_over_the_cap_is_refused_before_any_route_reads_it(idx):
    from prompt_retriever.serving.middleware import MAX_BODY_BYTES

    client = TestClient(create_app(PromptRetriever.load(idx), admin_token=TOKEN))
    before = (idx / "manifest.json").read_bytes()
    big = {**BELL, "text": "x" * (MAX_BODY_BYTES + 1)}
    r = client.put("/api/prompts/bell-1", json=big, headers=AUTH)  # Content-Length says it
    assert r.status_code == 413 and "request body over" in r.json()["error"], r.text

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(3):
            yield b"x" * (MAX_BODY_BYTES // 2)

    r = client.put("/api/prompts/bell-1", content=chunks(), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/json"
    assert client.put("/api/prompts/bell-1", json=BELL, headers=AUTH).status_code == 200  # under the cap: fine
    assert (idx / "manifest.json").read_bytes() != before
