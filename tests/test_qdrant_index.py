"""`QdrantIndex` (`search/qdrant_index.py`): the engine design on a Qdrant server or cluster through
`qdrant-client`, run here in qdrant-client's local mode (the same client API, pure Python, exact search;
no server can be started on this machine). Dense against `ExactStore`, BM25 against `BM25System`, and every
system through `EngineSearch` against the same system over an `EdgeIndex` of the same prompts and vectors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from engine_util import BM25_QUERIES, SPECS, assert_bm25_equal, spec_id, unit_vectors

from prompt_retriever.corpus import load_corpus
from prompt_retriever.errors import InputError
from prompt_retriever.search.edge import EdgeIndex
from prompt_retriever.search.engine import EngineSearch
from prompt_retriever.search.engine_open import open_qdrant
from prompt_retriever.search.qdrant_connection import connect
from prompt_retriever.search.qdrant_index import QdrantIndex
from prompt_retriever.search.stores import ExactStore, point_id
from prompt_retriever.search.systems import BM25System

pytest.importorskip("qdrant_client")

DIM = 16
QUERIES = BM25_QUERIES


@pytest.fixture(scope="module")
def bundled():
    return load_corpus()


@pytest.fixture(scope="module")
def vectors(bundled):
    return unit_vectors(len(bundled), DIM)


@pytest.fixture(scope="module")
def indexes(bundled, vectors, tmp_path_factory):
    """A QdrantIndex (local mode, in memory) and an EdgeIndex of the same prompts and vectors (read only)."""
    root = tmp_path_factory.mktemp("indexes")
    qdrant = QdrantIndex.build(root / "qdrant", bundled, vectors, location=":memory:")
    edge = EdgeIndex.build(root / "edge", bundled, vectors)
    yield qdrant, edge
    qdrant.close()
    edge.close()


def same_lists(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert [pid for pid, _ in a] == [pid for pid, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-5)


def test_dense_candidates_equal_exact_store(indexes, bundled, vectors):
    qdrant, _ = indexes
    store = ExactStore(DIM)
    store.upsert([p.id for p in bundled], vectors, [{"genre": p.genre, "theme": p.theme} for p in bundled])
    queries = unit_vectors(8, DIM, seed=1)
    genre, theme = bundled[0].genre, bundled[0].theme
    for g, t in [(None, None), (genre, None), (f" {genre.upper()} ", theme), ("no such genre", None)]:
        got = qdrant.dense_candidates(queries, depth=10, genre=g, theme=t)
        same_lists(got, store.search_many(queries, 10, g, t))
    assert qdrant.dense_candidates(queries[:1], depth=3, genre="no such genre") == [[]]
    with pytest.raises(InputError):
        qdrant.dense_candidates(queries[:, :5], depth=3)


def test_bm25_candidates_equal_bm25system(indexes, bundled):
    qdrant, _ = indexes
    assert_bm25_equal(qdrant, bundled)
    assert_bm25_equal(qdrant, bundled, genre=bundled[0].genre)
    assert_bm25_equal(qdrant, bundled, genre=f" {bundled[0].genre.upper()}")
    assert qdrant.bm25_candidates(["zzzz qqqq", ""], depth=10) == [[], []]
    assert len(qdrant.bm25_candidates(["lighthouse keeper"], depth=5)[0]) == 5


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_engine_search_over_qdrant_equals_over_edge(indexes, bundled, vectors, spec):
    qdrant, edge = indexes
    order = {p.id: i for i, p in enumerate(bundled)}
    qids = [f"q{i}" for i in range(len(QUERIES))]
    queries = unit_vectors(len(QUERIES), DIM, seed=2)
    queries[0] = vectors[3]  # a query on a prompt's own vector
    for k, genre in ((10, None), (3, bundled[0].genre)):
        on_qdrant = EngineSearch(qdrant, spec, order).run(qids, QUERIES, queries, k, genre)
        on_edge = EngineSearch(edge, spec, order).run(qids, QUERIES, queries, k, genre)
        assert list(on_qdrant) == list(on_edge) == qids
        for q in qids:
            assert list(on_qdrant[q]) == list(on_edge[q]), (spec, k, genre, q)
            assert list(on_qdrant[q].values()) == pytest.approx(list(on_edge[q].values()), abs=1e-5)


def test_upsert_and_delete_keep_bm25_exact(bundled, vectors, tmp_path):
    index = QdrantIndex.build(tmp_path / "idx", bundled[:600], vectors[:600], location=":memory:")
    gone = [p.id for p in bundled[:50]]
    assert index.delete([*gone, "not-a-prompt"]) == 50
    assert index.delete(gone) == 0
    assert len(index) == 550 == index.client.count(index.collection, exact=True).count
    assert index.terms.drift == 0.0  # max_drift 0: every update reweights
    assert_bm25_equal(index, bundled[50:600])
    assert not {pid for c in index.dense_candidates(vectors[:50], depth=20) for pid, _ in c} & set(gone)
    # add new prompts and replace one in place (same id, new text), tolerating drift, then reweight
    index.max_drift = 1.0
    changed = dataclasses.replace(bundled[60], text="A lighthouse keeper counts dragons on a train to Vienna.")
    index.upsert([*bundled[600:], changed], np.vstack([vectors[600:], vectors[60:61]]))
    live = [changed if p.id == changed.id else p for p in bundled[50:]]
    assert len(index) == len(live) == index.client.count(index.collection, exact=True).count
    assert index.terms.drift > 0
    system = BM25System(live)
    scores = dict(zip(system.ids, system.scores(["lighthouse keeper"])[0], strict=True))
    d = index.terms.drift
    for pid, s in index.bm25_candidates(["lighthouse keeper"], depth=50)[0]:
        assert abs(s / scores[pid] - 1) <= d / (1 - d) + 1e-4
    index.reweight()
    assert index.terms.drift == 0.0
    assert_bm25_equal(index, live)
    assert_bm25_equal(index, live, genre=bundled[0].genre)
    assert index.bm25_candidates(["dragons Vienna"], depth=1)[0][0][0] == changed.id
    index.close()


def test_persist_reopen_and_refusals(bundled, vectors, tmp_path):
    folder, data = tmp_path / "idx", tmp_path / "qdrant-data"  # local mode in a folder: reopened by path
    index = QdrantIndex.build(folder, bundled[:100], vectors[:100], location=data, collection="mine")
    index.source = {"corpus_fingerprint": "abc"}
    index.delete([bundled[0].id])
    before = (index.dense_candidates(vectors[:3], 5), index.bm25_candidates(QUERIES, 100))
    index.close()
    meta = json.loads((folder / "qdrant.json").read_text())
    assert meta["url"] == str(data) and meta["collection"] == "mine" and meta["dim"] == DIM
    assert "api_key" not in json.dumps(meta)
    with QdrantIndex.open(folder) as again:
        assert len(again) == 99 and again.source == {"corpus_fingerprint": "abc"}
        # the same lists (local mode rounds the reloaded vectors a little differently: 1e-7)
        same_lists(again.dense_candidates(vectors[:3], 5), before[0])
        for a, b in zip(again.bm25_candidates(QUERIES, 100), before[1], strict=True):  # ties in any order
            assert dict(a) == pytest.approx(dict(b), abs=1e-5)
        assert_bm25_equal(again, bundled[1:100])
        with pytest.raises(InputError, match="already"):
            QdrantIndex.create(tmp_path / "other", DIM, location=again.client, collection="mine")
        with pytest.raises(InputError, match="already holds"):
            QdrantIndex.create(folder, DIM, location=again.client, collection="fresh")
        # a collection changed behind the index's back is refused
        again.client.delete("mine", points_selector=[point_id(bundled[1].id)], wait=True)
        with pytest.raises(InputError, match="changed elsewhere"):
            QdrantIndex.open(folder, location=again.client)
    with pytest.raises(InputError):
        QdrantIndex.open(tmp_path / "missing")


def test_open_qdrant_reuses_rebuilds_and_refuses(bundled, vectors, tmp_path):
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    folder, src = tmp_path / "q", {"corpus_fingerprint": "one"}
    notes = []
    kw = {"location": client, "template": "full", "announce": notes.append}
    first = open_qdrant(folder, bundled[:40], vectors[:40], source=src, max_drift=0.01, **kw)
    assert len(first) == 40 and first.max_drift == 0.01 and len(notes) == 1
    assert open_qdrant(folder, bundled[:40], vectors[:40], source=src, **kw) is first and len(notes) == 1
    second = open_qdrant(folder, bundled[40:70], vectors[40:70], source={"corpus_fingerprint": "two"}, **kw)
    assert len(notes) == 2 and len(second) == 30 == client.count("prompts", exact=True).count
    assert {p for p, _ in second.bm25_candidates([bundled[0].title], 100)[0]}.isdisjoint({bundled[0].id})
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a Qdrant engine index"):
        open_qdrant(tmp_path / "mine", bundled[:5], vectors[:5], source=src, **kw)
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "keep me"


def test_a_server_url_takes_the_key_from_the_environment(monkeypatch, no_network):
    monkeypatch.setenv("QDRANT_API_KEY", "from-the-environment")
    url = "https://qdrant.invalid:6333"
    client = connect(url, check_compatibility=False)  # otherwise it asks the server its version at once
    assert client.init_options["url"] == url and client.init_options["api_key"] == "from-the-environment"
    assert connect(url, api_key="given", check_compatibility=False).init_options["api_key"] == "given"
