"""Every system served through the Qdrant Edge engine (`search/engine.py`, `PromptRetriever.use_engine`)
answers what the exact in-process path answers (the path evaluation measures): the real engine, the real
bundled model, the bundled corpus (below the engine's indexing threshold, so its search is exact)."""

from __future__ import annotations

import pytest
from engine_util import SPECS, spec_id

from prompt_retriever.corpus import Prompt, load_corpus
from prompt_retriever.errors import InputError
from prompt_retriever.search import PromptRetriever, SearchRequest
from prompt_retriever.search.engine_open import AUTO_MIN_PROMPTS, engine_dir, resolve_engine
from prompt_retriever.search.systems import SystemSpec

QUERIES = [
    "haunted lighthouse",
    "a story where someone has to forgive the parent who left them",
    "robot",
    "first love on a night train, told in letters",
    "memoir about food and my grandmother's kitchen",
    "zzzz qqqq",  # no BM25 match
    "the the war war",
]


@pytest.fixture(scope="module")
def bundled():
    return load_corpus()


@pytest.fixture(scope="module")
def exact(bundled):
    return PromptRetriever().index(bundled)


def same_hits(got, want):
    assert [h.prompt.id for h in got] == [h.prompt.id for h in want]
    assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_the_engine_answers_what_the_exact_path_answers(exact, spec, tmp_path):
    exact.system = spec
    exact._bm25 = None
    engine = PromptRetriever(system=spec)
    engine.prompts, engine.embeddings = list(exact.prompts), exact.embeddings
    engine._sync(engine.prompts, engine.embeddings)
    engine.use_engine("edge", tmp_path / "edge")
    assert engine.describe()["engine"] == "edge" and exact.describe()["engine"] == "exact"
    genre = exact.prompts[0].genre
    for k, g in ((10, None), (3, None), (10, genre), (10, genre.upper())):
        requests = [SearchRequest(q, k, g) for q in QUERIES]
        for got, want in zip(engine.search_requests(requests), exact.search_requests(requests), strict=True):
            same_hits(got, want)
            assert all(h.prompt.genre == genre for h in got) if g else True


def test_live_updates_reach_the_engine_and_bm25_statistics_follow(bundled, tmp_path):
    r = PromptRetriever(system=SystemSpec("hybrid", alpha=0.5)).index(bundled[:200])
    r.source = tmp_path / "index"
    r.save(r.source)
    r.use_engine("edge")
    assert r.engine.folder.parent == engine_dir(tmp_path / "index") == tmp_path / "index-edge"
    new = Prompt("zz-new", "Horror", "Grief", "The Quokka Lighthouse", "A quokka keeps a haunted lighthouse.")
    r.add([new])
    r.remove([bundled[0].id])
    r.engine.reweight()  # live updates tolerate a little BM25 drift; after a reweight they are exact again
    fresh = PromptRetriever(system=SystemSpec("hybrid", alpha=0.5)).index([*bundled[1:200], new])
    for q in ("quokka lighthouse", "haunted lighthouse", "grief"):
        same_hits(r.search(q, k=10), fresh.search(q, k=10))
    assert r.search("quokka", k=1)[0].prompt.id == "zz-new"
    assert bundled[0].id not in {h.prompt.id for h in r.search(bundled[0].title, k=50)}
    # saved with the index: reopened as it is, not rebuilt
    r.save(r.source)
    again = PromptRetriever.load(tmp_path / "index", engine="edge")
    assert again.engine.source == r.engine.source
    assert [h.prompt.id for h in again.search("quokka lighthouse", k=5)] == [
        h.prompt.id for h in r.search("quokka lighthouse", k=5)
    ]


def test_the_served_copy_answers_k_while_its_update_writes_to_the_shared_engine(bundled, tmp_path):
    """A server's live update copies the retriever, adds to the copy (and so to the engine both share),
    persists, then swaps: until the swap the served one still answers k of its own prompts."""
    served = PromptRetriever().index(bundled[:60]).use_engine("edge", tmp_path / "edge")
    query = "a quokka keeps a haunted lighthouse"
    before = [h.prompt.id for h in served.search(query, k=3)]
    update = served.copy()
    new = [
        Prompt(f"zz-{i}", "Horror", "Grief", f"Quokka Light {i}", "A quokka keeps a haunted lighthouse.")
        for i in range(2)
    ]
    update.add(new)
    assert {h.prompt.id for h in update.search(query, k=2)} == {"zz-0", "zz-1"}  # the engine holds them
    assert [h.prompt.id for h in served.search(query, k=3)] == before  # not 1 hit: the 2 new ones skipped
    assert [h.rank for h in served.search(query, k=3)] == [1, 2, 3]
    assert [h.prompt.id for h in update.search(query, k=3)][:2] != before[:2]


def test_a_stale_engine_index_is_rebuilt_and_a_foreign_folder_refused(bundled, tmp_path):
    r = PromptRetriever(system="bm25").index(bundled[:50])
    r.use_engine("edge", tmp_path / "e")
    r.engine.close()
    other = PromptRetriever(system="bm25").index(bundled[50:80])
    notes = []
    other.use_engine("edge", tmp_path / "e", announce=notes.append)
    assert "stale" in notes[0] and len(other.engine) == 30
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("keep me")
    with pytest.raises(InputError, match="not an engine index"):
        other.use_engine("edge", tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "keep me"


def test_auto_chooses_by_size():
    assert resolve_engine("auto", AUTO_MIN_PROMPTS - 1) == "exact"
    assert resolve_engine("auto", AUTO_MIN_PROMPTS) == "edge"
    assert resolve_engine("auto", 10**7, "hybrid-adaptive") == "exact"  # measured: not faster, see docs/engines.md
    assert resolve_engine("exact", 10**7) == "exact"
    with pytest.raises(InputError, match="unknown engine"):
        resolve_engine("faiss", 10)


def test_the_cli_takes_an_engine_and_refuses_it_where_it_means_nothing(small_corpus_path, tmp_path):
    import json

    from typer.testing import CliRunner

    from prompt_retriever.cli import app

    runner = CliRunner()
    args = ["search", "a lighthouse keeper", "--corpus", str(small_corpus_path), "-k", "3", "--jsonl"]
    got = {e: runner.invoke(app, [*args, "--system", "hybrid", "--engine", e]) for e in ("exact", "edge")}
    assert all(r.exit_code == 0 for r in got.values()), got["edge"].output
    ids = {e: [json.loads(x)["id"] for x in r.stdout.splitlines()] for e, r in got.items()}
    assert ids["edge"] == ids["exact"] and len(ids["edge"]) == 3
    res = runner.invoke(app, ["evaluate", "--golden", str(tmp_path), "--engine", "edge", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "--run" in res.output
    res = runner.invoke(app, ["serve", "--engine", "edge", "--qdrant-path", str(tmp_path / "q")])
    assert res.exit_code == 2 and "cannot be used together" in res.output
    res = runner.invoke(app, [*args, "--engine", "faiss"])
    assert res.exit_code == 2 and "unknown engine" in res.output


def test_the_engine_answers_from_several_threads_while_one_writes(bundled, tmp_path):
    import threading

    r = PromptRetriever(system=SystemSpec("hybrid", alpha=0.5)).index(bundled[:120])
    r.use_engine("edge", tmp_path / "e")
    queries = [SearchRequest(q, 5) for q in QUERIES]
    want = [[h.prompt.id for h in hits] for hits in r.search_requests(queries)]
    problems: list[str] = []

    def reader():
        try:
            for _ in range(15):
                got = [[h.prompt.id for h in hits] for hits in r.search_requests(queries)]
                if got != want:
                    problems.append(f"changed: {got} != {want}")
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            problems.append(repr(e))

    def writer():  # prompts the readers' retriever does not know, made to be among their candidates
        try:
            for i in range(20):
                p = Prompt(f"zz-{i}", "Horror", "Grief", f"Haunted Lighthouse {i}", "A robot forgives a parent.")
                r.engine.upsert([p], r._embed([p]))
        except Exception as e:  # noqa: BLE001
            problems.append(repr(e))

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [p for p in problems if not p.startswith("changed")], problems
    assert all(not h.prompt.id.startswith("zz-") for hits in r.search_requests(queries) for h in hits)
    assert r.engine.bm25_candidates(["haunted lighthouse"], 3)[0][0][0].startswith("zz-")  # they were there


@pytest.mark.parametrize("spec", [SystemSpec("dense"), SystemSpec("hybrid-adaptive", alphas=(0.2, 0.5, 0.7, 0.9))])
def test_a_qdrant_collection_answers_what_the_exact_path_answers(exact, spec, tmp_path):
    """Through qdrant-client (its local mode here: no server can run in the tests), as a server would."""
    exact.system, exact._bm25 = spec, None
    r = PromptRetriever(system=spec)
    r.prompts, r.embeddings = list(exact.prompts), exact.embeddings
    r._sync(r.prompts, r.embeddings)
    r.use_engine("qdrant", tmp_path / "q", location=":memory:")
    assert r.describe()["engine"] == "qdrant"
    requests = [SearchRequest(q, 10) for q in QUERIES[:4]]
    for got, want in zip(r.search_requests(requests), exact.search_requests(requests), strict=True):
        same_hits(got, want)


def test_the_qdrant_engine_needs_a_server(small_corpus_path, tmp_path):
    from typer.testing import CliRunner

    from prompt_retriever.cli import app

    res = CliRunner().invoke(app, ["serve", "--engine", "qdrant", "--corpus", str(small_corpus_path)])
    assert res.exit_code == 2 and "--qdrant-url" in res.output
    with pytest.raises(InputError, match="needs a Qdrant server"):
        PromptRetriever(system="bm25").index(load_corpus()[:5]).use_engine("qdrant", tmp_path / "q")


def test_a_qdrant_url_without_a_scheme_is_refused_not_taken_for_a_folder(small_corpus_path, tmp_path, monkeypatch):
    """qdrant-client takes anything but http(s):// for a local-mode folder: `localhost:6333` searched a new,
    empty folder of that name instead of the server."""
    from typer.testing import CliRunner

    from prompt_retriever.cli import app
    from prompt_retriever.search.stores import QdrantStore
    from prompt_retriever.serving.server import build_retriever

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["serve", "--qdrant-url", "localhost:6333", "--corpus", str(small_corpus_path)])
    assert res.exit_code == 2 and "must start with http:// or https://" in res.output
    with pytest.raises(InputError, match="must start with http"):
        QdrantStore(384, url="localhost:6333")
    with pytest.raises(InputError, match="must start with http"):
        build_retriever(prompts=load_corpus()[:3], qdrant_url="localhost:6333")
    assert not (tmp_path / "localhost:6333").exists()


@pytest.mark.parametrize("spec", SPECS[2:3] + SPECS[4:], ids=spec_id)
def test_the_engine_with_bm25_in_process_answers_what_the_exact_path_answers(exact, spec, tmp_path):
    """`LocalScores`: the dense side from the engine, BM25 from full rows in process (`candidates_local`)."""
    from prompt_retriever.search.engine import EngineSearch, LocalScores
    from prompt_retriever.search.runs import filter_mask, rank

    exact.system, exact._bm25 = spec, None
    engine = PromptRetriever(system=spec)
    engine.prompts, engine.embeddings = list(exact.prompts), exact.embeddings
    engine._sync(engine.prompts, engine.embeddings)
    engine.use_engine("edge", tmp_path / "edge")
    prompts = exact.prompts
    local = LocalScores(
        exact.embeddings,
        [p.id for p in prompts],
        exact.bm25.scores,
        lambda g, t: filter_mask([p.genre for p in prompts], [p.theme for p in prompts], g, t),
    )
    search = EngineSearch(engine.engine, spec, {p.id: i for i, p in enumerate(prompts)}, local=local)
    vectors = exact.encoder.encode_queries(QUERIES)
    genre = prompts[0].genre
    for k, g in ((10, None), (3, None), (10, genre)):
        run = search.run([str(i) for i in range(len(QUERIES))], QUERIES, vectors, k, g)
        want = exact.search_requests([SearchRequest(q, k, g) for q in QUERIES])
        for i, hits in enumerate(want):
            assert rank(run[str(i)]) == [h.prompt.id for h in hits]
            assert [run[str(i)][h.prompt.id] for h in hits] == pytest.approx([h.score for h in hits], abs=1e-5)
