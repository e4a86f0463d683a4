"""The Qdrant Edge engine index (`search/edge.py`): the real engine, the real bundled model on the small
corpus, BM25 against `BM25System` on the bundled corpus."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from engine_util import BM25_QUERIES as QUERIES
from engine_util import assert_bm25_equal, unit_vectors

from prompt_retriever.corpus import load_corpus
from prompt_retriever.errors import InputError
from prompt_retriever.search.edge import EdgeIndex, HnswParams
from prompt_retriever.search.stores import ExactStore
from prompt_retriever.search.systems import BM25System, DenseSystem


@pytest.fixture(scope="module")
def dense(small_prompts):
    return DenseSystem("all-MiniLM-L6-v2", small_prompts)


@pytest.fixture(scope="module")
def bundled():
    return load_corpus()


def test_bm25_candidates_equal_bm25system(tmp_path, bundled):
    index = EdgeIndex.build(tmp_path / "idx", bundled, unit_vectors(len(bundled)))
    assert_bm25_equal(index, bundled)
    assert index.bm25_candidates(["zzzz qqqq", ""], depth=10) == [[], []]
    top = index.bm25_candidates(["lighthouse keeper"], depth=5)[0]
    assert len(top) == 5
    assert_bm25_equal(index, bundled, genre="Horror")
    index.close()


def test_dense_candidates_equal_exact_store(tmp_path, small_prompts, dense):
    index = EdgeIndex.build(tmp_path / "idx", small_prompts, dense.matrix)
    store = ExactStore(dense.matrix.shape[1])
    store.upsert(dense.ids, dense.matrix, [{"genre": p.genre, "theme": p.theme} for p in small_prompts])
    qv = dense.encoder.encode_queries(QUERIES)
    for genre, theme in [(None, None), ("horror", None), (" HORROR ", "grief"), ("no such genre", None)]:
        got = index.dense_candidates(qv, depth=5, genre=genre, theme=theme)
        want = store.search_many(qv, 5, genre, theme)
        for g, w in zip(got, want, strict=True):
            assert [pid for pid, _ in g] == [pid for pid, _ in w]
            assert [s for _, s in g] == pytest.approx([s for _, s in w], abs=1e-5)
    assert index.dense_candidates(qv[:1], depth=3, genre="no such genre") == [[]]
    with pytest.raises(InputError):
        index.dense_candidates(qv[:, :10], depth=3)
    index.close()


def test_dense_candidates_through_the_hnsw_graph(tmp_path, small_prompts, dense):
    """A graph built even for a small corpus (indexing threshold 1 KB): the HNSW path, not a plain scan."""
    hnsw = HnswParams(indexing_threshold_kb=1, full_scan_threshold=1)
    index = EdgeIndex.build(tmp_path / "idx", small_prompts, dense.matrix, hnsw=hnsw)
    assert index.shard.info().indexed_vectors_count == 2 * len(small_prompts)  # dense graph + sparse index
    qv = dense.encoder.encode_queries(QUERIES)
    want = dense.matrix.astype(np.float64) @ qv.T.astype(np.float64)
    for n, got in enumerate(index.dense_candidates(qv, depth=len(small_prompts))):
        assert [pid for pid, _ in got] == [dense.ids[i] for i in np.argsort(-want[:, n])]
    index.close()
    with EdgeIndex.open(tmp_path / "idx") as again:
        assert again.hnsw == hnsw


def test_filters_run_in_the_engine(tmp_path, small_prompts, dense):
    index = EdgeIndex.build(tmp_path / "idx", small_prompts, dense.matrix)
    qv = dense.encoder.encode_queries(["a haunted place"])
    by_id = {p.id: p for p in small_prompts}
    hits = index.dense_candidates(qv, depth=10, genre="Horror")[0]
    assert hits and all(by_id[pid].genre == "Horror" for pid, _ in hits)
    assert len(hits) == sum(p.genre == "Horror" for p in small_prompts)
    hits = index.bm25_candidates(["lighthouse"], depth=10, theme="GRIEF")[0]
    assert hits and all(by_id[pid].theme == "Grief" for pid, _ in hits)
    index.close()


def test_delete_and_update_keep_bm25_exact(tmp_path, bundled):
    vectors = unit_vectors(len(bundled))
    index = EdgeIndex.build(tmp_path / "idx", bundled[:600], vectors[:600])
    gone = [p.id for p in bundled[:50]]
    assert index.delete([*gone, "not-a-prompt"]) == 50
    assert index.delete(gone) == 0
    assert len(index) == 550 and index.terms.drift == 0.0
    live = bundled[50:600]
    assert_bm25_equal(index, live)
    assert not {pid for c in index.dense_candidates(vectors[:50], depth=20) for pid, _ in c} & set(gone)
    # add new prompts and replace one in place (same id, new text)
    changed = dataclasses.replace(bundled[60], text="A lighthouse keeper counts dragons on a train to Vienna.")
    index.upsert([*bundled[600:], changed], np.vstack([vectors[600:], vectors[60:61]]))
    live = [changed if p.id == changed.id else p for p in bundled[50:]]
    assert len(index) == len(live) == index.shard.info().points_count
    assert_bm25_equal(index, live)
    index.close()


def test_drift_tolerance_then_reweight(tmp_path, bundled):
    vectors = unit_vectors(len(bundled))
    index = EdgeIndex.build(tmp_path / "idx", bundled, vectors)
    index.max_drift = 1.0  # tolerate: statistics move, document vectors stay
    index.delete([p.id for p in bundled if len(p.text) > 300])
    live = [p for p in bundled if len(p.text) <= 300]
    assert index.terms.drift > 0
    system = BM25System(live)
    scores = dict(zip(system.ids, system.scores(["lighthouse keeper"])[0], strict=True))
    for pid, s in index.bm25_candidates(["lighthouse keeper"], depth=50)[0]:
        d = index.terms.drift
        assert abs(s / scores[pid] - 1) <= d / (1 - d) + 1e-4
    index.reweight()
    assert index.terms.drift == 0.0
    assert_bm25_equal(index, live)
    index.close()


def test_persist_and_reopen(tmp_path, small_prompts, dense):
    folder = tmp_path / "idx"
    index = EdgeIndex.build(folder, small_prompts, dense.matrix)
    qv = dense.encoder.encode_queries(QUERIES)
    before = (index.dense_candidates(qv, 5), index.bm25_candidates(QUERIES, 5))
    index.delete([small_prompts[0].id])
    after = (index.dense_candidates(qv, 5), index.bm25_candidates(QUERIES, 5))
    index.close()
    with EdgeIndex.open(folder) as again:
        assert len(again) == len(small_prompts) - 1
        assert (again.dense_candidates(qv, 5), again.bm25_candidates(QUERIES, 5)) == after
        assert after != before
        assert_bm25_equal(again, small_prompts[1:])
    with pytest.raises(InputError):
        EdgeIndex.create(folder, dense.matrix.shape[1])
    EdgeIndex.build(folder, small_prompts, dense.matrix, replace=True).close()
    with EdgeIndex.open(folder) as rebuilt:
        assert (rebuilt.dense_candidates(qv, 5), rebuilt.bm25_candidates(QUERIES, 5)) == before
    with pytest.raises(InputError):
        EdgeIndex.open(tmp_path / "missing")
