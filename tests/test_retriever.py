from __future__ import annotations

import json

import numpy as np
import pytest

from prompt_retriever.corpus import Prompt
from prompt_retriever.encoding.encoder import DOCUMENT_TEMPLATES, EmbeddingCache, Encoder, prompt_document
from prompt_retriever.search.retriever import IndexLoadError, PromptRetriever, SearchRequest
from prompt_retriever.search.stores import top_k_indices


def test_distinctive_words_find_their_prompt(small_retriever, small_prompts):
    queries = {
        "Forty Days of Oxygen": "botanist growing potatoes on a frozen moon",
        "The Dragon's Accountant": "wizard counting gold in a dragon hoard",
        "Teeth in the Cellar Jar": "jar of baby teeth in an old farmhouse",
    }
    for title, q in queries.items():
        hits = small_retriever.search(q, k=3)
        assert title in [h.prompt.title for h in hits], (q, [h.prompt.title for h in hits])


def test_hits_are_ranked_and_normalised(small_retriever):
    hits = small_retriever.search("lighthouse", k=8)
    assert [h.rank for h in hits] == list(range(1, 9))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    norms = np.linalg.norm(small_retriever.embeddings, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5) and small_retriever.embeddings.dtype == np.float32


def test_filters(small_retriever):
    hits = small_retriever.search("lighthouse", k=5, genre="romance")
    assert hits and all(h.prompt.genre == "Romance" for h in hits)
    assert len(hits) == 2  # only two Romance prompts exist
    hits = small_retriever.search("lighthouse", k=5, genre="Horror", theme="grief")
    assert [h.prompt.title for h in hits] == ["The Keeper's Last Log"]
    assert small_retriever.search("lighthouse", genre="Romance", theme="Grief") == []  # both known, never together
    with pytest.raises(ValueError, match="unknown genre 'Poetry'"):  # as the CLI and the API refuse it
        small_retriever.search("lighthouse", genre="Poetry")


def test_search_requests_match_one_by_one_searches(small_retriever):
    requests = [
        SearchRequest("lighthouse", 5, "Romance"),
        SearchRequest("wizard counting gold", 3),
        SearchRequest("lighthouse", 5, "Horror", "Grief"),
        SearchRequest("jar of baby teeth", 3),
        SearchRequest("lighthouse", 5, "Romance", "Grief"),
        SearchRequest("a storm at sea", 1),
    ]
    together = small_retriever.search_requests(requests)
    for r, hits in zip(requests, together, strict=True):
        alone = small_retriever.search(r.query, r.k, r.genre, r.theme)
        assert [h.prompt.id for h in hits] == [h.prompt.id for h in alone]
        assert np.allclose([h.score for h in hits], [h.score for h in alone], atol=1e-5)
    assert together[4] == [] and len(together[5]) == 1
    with pytest.raises(ValueError, match="k must be"):
        small_retriever.search_requests([SearchRequest("x", 0)])
    with pytest.raises(ValueError, match="unknown genre 'Poetry'"):
        small_retriever.search_requests([SearchRequest("x", 5, "Poetry")])


def test_add_and_remove(small_prompts):
    r = PromptRetriever().index(small_prompts[:4])
    extra = Prompt("bees-1", "Poetry", "Nature", "Hive Hymn", "Write a poem in the voice of a beekeeper at dawn.")
    r.add([extra])
    assert len(r) == 5 and r.search("beekeeper poem", k=1)[0].prompt.id == "bees-1"
    r.add([extra])  # same id replaces, never duplicates
    assert len(r) == 5
    assert r.remove(["bees-1"]) == 1 and len(r) == 4
    with pytest.raises(KeyError):
        r.remove(["bees-1"])
    assert r.embeddings.shape == (4, 384)


def test_save_load_round_trip(tmp_path, small_retriever):
    small_retriever.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["count"] == 8 and manifest["dimension"] == 384
    assert manifest["fingerprint"] == small_retriever.fingerprint
    loaded = PromptRetriever.load(tmp_path / "idx")
    for q in ["lighthouse ghost", "space mechanic robot", "love on a train"]:
        a = [(h.prompt.id, round(h.score, 6)) for h in small_retriever.search(q, k=5)]
        b = [(h.prompt.id, round(h.score, 6)) for h in loaded.search(q, k=5)]
        assert a == b


def test_load_refuses_index_from_another_model(tmp_path, small_retriever):
    small_retriever.save(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["fingerprint"] = "some/other-model@0123456789abcdef"
    manifest["model"] = "some/other-model"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match="built with model some/other-model"):
        PromptRetriever.load(tmp_path / "idx", model="all-MiniLM-L6-v2")


def test_load_detects_corruption(tmp_path, small_retriever):
    small_retriever.save(tmp_path / "idx")
    with open(tmp_path / "idx" / "embeddings.npy", "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(IndexLoadError, match="checksum mismatch"):
        PromptRetriever.load(tmp_path / "idx")
    with pytest.raises(IndexLoadError, match="not an index folder"):
        PromptRetriever.load(tmp_path)


def test_document_templates(small_prompts):
    p = small_prompts[0]
    assert prompt_document(p, "text") == p.text
    full = prompt_document(p)
    assert p.title in full and p.genre in full and p.theme in full and p.text in full
    assert prompt_document(p, "{genre}: {text}") == f"{p.genre}: {p.text}"
    with pytest.raises(ValueError, match="bad document template"):
        prompt_document(p, "{nope}")
    assert set(DOCUMENT_TEMPLATES) >= {"text", "full"}


def test_embedding_cache_reuses_vectors(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_RETRIEVER_CACHE_DIR", str(tmp_path))
    enc = Encoder("all-MiniLM-L6-v2")
    first = enc.encode_documents(["one prompt text", "another text"])
    calls = []
    orig = enc._encode
    monkeypatch.setattr(enc, "_encode", lambda texts, progress: calls.append(list(texts)) or orig(texts, progress))
    again = enc.encode_documents(["another text", "one prompt text", "a new text"])
    assert calls == [["a new text"]]  # only the unseen text is encoded
    assert np.allclose(again[1], first[0]) and np.allclose(again[0], first[1])
    # a fresh cache object reads the same vectors back from disk
    fresh = EmbeddingCache(enc.fingerprint)
    assert len(fresh.get(["one prompt text", "another text", "a new text"])) == 3


def test_corrupt_embedding_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_RETRIEVER_CACHE_DIR", str(tmp_path))
    enc = Encoder("all-MiniLM-L6-v2")
    enc.encode_documents(["x y z"])
    (enc.cache.dir / "vectors.npy").write_bytes(b"garbage")
    fresh = Encoder("all-MiniLM-L6-v2")
    with pytest.warns(UserWarning, match="unreadable"):
        vec = fresh.encode_documents(["x y z"])
    assert vec.shape == (1, 384)


def test_top_k_indices_ties_and_bounds():
    s = np.array([0.5, 0.9, 0.9, 0.1])
    assert top_k_indices(s, 2).tolist() == [1, 2]
    assert top_k_indices(s, 10).tolist() == [1, 2, 0, 3]
