"""BM25Index: bm25s's scores bit for bit, before and after any sequence of adds and removes, without
re-indexing (the reference is a fresh `bm25s.BM25` over the documents live at that moment)."""

from __future__ import annotations

import dataclasses
import random

import bm25s
import numpy as np
import pytest
import Stemmer

from prompt_retriever.corpus.reader import load_corpus
from prompt_retriever.encoding.encoder import prompt_document
from prompt_retriever.search import bm25_index
from prompt_retriever.search.bm25_index import BM25Index
from prompt_retriever.search.bm25_terms import tokenize
from prompt_retriever.search.retriever import PromptRetriever
from prompt_retriever.search.systems import BM25System

QUERIES = [
    "haunted lighthouse",
    "a story where someone has to forgive the parent who left them",
    "dragon dragon war",  # a repeated token counts twice
    "zzzqx",  # no document has it
    "the and of",  # stop words only
    "love and loss at sea, years after the storm",
]


def bm25s_scores(texts: list[str], queries: list[str]) -> np.ndarray:
    """What bm25s itself scores (the project's tokenizer, Lucene BM25 k1 1.5 b 0.75)."""
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)
    model = bm25s.BM25(k1=1.5, b=0.75)
    model.index(tokens, show_progress=False)
    out = np.zeros((len(queries), len(texts)), dtype=np.float32)
    for i, words in enumerate(tokenize(queries)):
        known = [w for w in words if w in tokens.vocab]
        if known:
            out[i] = model.get_scores(known)
    return out


@pytest.fixture(scope="module")
def documents() -> list[str]:
    return [prompt_document(p) for p in load_corpus()]


def test_a_fresh_index_scores_as_bm25s_bit_for_bit(documents):
    index = BM25Index()
    index.add(tokenize(documents))
    got = index.scores(tokenize(QUERIES))
    assert got.dtype == np.float32 and got.shape == (len(QUERIES), len(documents))
    assert np.array_equal(got, bm25s_scores(documents, QUERIES))
    assert got[3].max() == 0 and got[4].max() == 0 and got[0].max() > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_adds_and_removes_keep_the_scores_of_a_fresh_index(documents, monkeypatch, seed):
    # small thresholds, so the run goes through pending postings, reindexing and compaction
    monkeypatch.setattr(bm25_index, "PENDING_MIN", 40)
    rng = random.Random(seed)
    index, live = BM25Index(), []
    paths = set()
    for step in range(40):
        if live and rng.random() < 0.45:
            positions = rng.sample(range(len(live)), rng.randint(1, min(60, len(live))))
            index.remove(positions)
            gone = set(positions)
            live = [d for i, d in enumerate(live) if i not in gone]
        else:
            batch = [rng.choice(documents) + f" variation {step} {rng.random():.3f}" for _ in range(rng.randint(1, 50))]
            index.add(tokenize(batch))
            live += batch
        paths.add(("pending" if index._indexed < len(index._len) else "indexed", index.n_docs < len(index._alive)))
        assert len(index) == len(live)
        if step % 5 == 4 or step == 39:
            assert np.array_equal(index.scores(tokenize(QUERIES)), bm25s_scores(live, QUERIES)), step
    assert {p for p, _ in paths} == {"pending", "indexed"}  # both lookups were exercised
    assert any(dead for _, dead in paths)  # and tombstones
    index._compact()  # a compaction forgets the words no live document has
    assert set(index.vocab) == {w for tokens in tokenize(live) for w in tokens}
    assert sorted(index.vocab.values()) == list(range(len(index.vocab))) and (index._df > 0).all()
    assert np.array_equal(index.scores(tokenize(QUERIES)), bm25s_scores(live, QUERIES))


def test_a_copy_is_independent(documents):
    index = BM25Index()
    index.add(tokenize(documents[:100]))
    before = index.scores(tokenize(QUERIES))
    other = index.copy()
    other.add(tokenize(documents[100:150]))
    other.remove(range(10))
    assert np.array_equal(index.scores(tokenize(QUERIES)), before)
    assert np.array_equal(other.scores(tokenize(QUERIES)), bm25s_scores(documents[10:150], QUERIES))


def test_remove_refuses_a_position_out_of_range():
    index = BM25Index()
    index.add(tokenize(["a lighthouse keeper", "a train at dawn"]))
    with pytest.raises(IndexError, match="out of range"):
        index.remove([2])
    with pytest.raises(IndexError):
        index.remove([-1])
    assert len(index) == 2


def test_removing_everything_then_adding_again():
    index = BM25Index()
    index.add(tokenize(["a lighthouse keeper", "a train at dawn"]))
    index.remove([0, 1])
    assert index.scores(tokenize(["lighthouse"])).shape == (1, 0)
    index.add(tokenize(["the last lighthouse"]))
    assert np.array_equal(index.scores(tokenize(["lighthouse"])), bm25s_scores(["the last lighthouse"], ["lighthouse"]))


def test_a_served_hybrid_changes_its_bm25_index_in_step_without_rebuilding(small_prompts):
    assert len(small_prompts) >= 8
    retriever = PromptRetriever(system="hybrid").index(small_prompts[:5])
    bm25 = retriever.bm25
    served = retriever.copy()  # a server changes a copy while the original keeps answering
    served.add(small_prompts[5:8])
    served.remove([small_prompts[1].id, small_prompts[6].id])
    updated = dataclasses.replace(small_prompts[3], text="A keeper of a haunted lighthouse hears a voice.")
    served.add([updated])
    assert retriever.bm25 is bm25 and bm25.ids == [p.id for p in small_prompts[:5]]  # original untouched
    assert served.bm25.ids == [p.id for p in served.prompts]
    fresh = BM25System(served.prompts, template=served.template)
    assert np.array_equal(served.bm25.scores(QUERIES), fresh.scores(QUERIES))
    assert served.search("haunted lighthouse", k=1)[0].prompt == updated


def test_an_input_that_fails_midway_changes_nothing_and_remove_takes_any_iterable(small_prompts):
    index = BM25Index()

    def failing():
        yield ["a", "lighthouse"]
        raise RuntimeError("the reader failed")

    with pytest.raises(RuntimeError):
        index.add(failing())
    assert len(index) == 0 and not index.vocab
    docs = ["the last lighthouse keeper"]
    index.add(tokenize(docs))
    assert np.array_equal(index.scores(tokenize(["lighthouse"])), bm25s_scores(docs, ["lighthouse"]))
    system = BM25System(small_prompts[:5])
    system.remove(i for i in [1, 2])  # a generator, read once
    assert len(system.index) == len(system.ids) == 3
    assert system.ids == [small_prompts[i].id for i in (0, 3, 4)]
