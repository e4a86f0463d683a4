"""Backend parity: ONNX vs torch embeddings, Qdrant (embedded) vs the exact store."""

from __future__ import annotations

import numpy as np
import pytest

from prompt_retriever.corpus import load_corpus
from prompt_retriever.encoding.encoder import Encoder, prompt_document
from prompt_retriever.search.stores import ExactStore, QdrantStore, VectorStore


@pytest.fixture(scope="module")
def bundled():
    prompts = load_corpus()
    vecs = Encoder("all-MiniLM-L6-v2").encode_documents([prompt_document(p) for p in prompts])
    return prompts, vecs


def test_onnx_matches_torch_on_the_bundled_corpus(bundled):
    prompts, torch_vecs = bundled
    enc = Encoder("all-MiniLM-L6-v2", use_cache=False, backend="onnx")
    assert enc.backend == "onnx" and "+onnx/export" in enc.fingerprint
    onnx_vecs = enc.encode_queries([prompt_document(p) for p in prompts])
    cos = np.sum(onnx_vecs * torch_vecs, axis=1)
    assert cos.min() > 0.99, cos.min()
    q = enc.encode_queries(["haunted lighthouse"])
    assert q.shape == (1, 384) and abs(float(np.linalg.norm(q)) - 1) < 1e-4


def test_int8_variant_is_close(bundled):
    prompts, torch_vecs = bundled
    enc = Encoder("all-MiniLM-L6-v2", use_cache=False, backend="onnx-int8")
    vecs = enc.encode_queries([prompt_document(p) for p in prompts[:100]])
    assert np.mean(np.sum(vecs * torch_vecs[:100], axis=1)) > 0.9
    assert "+onnx-int8/export" in enc.fingerprint


def test_onnx_batches_longest_first_but_answers_in_input_order():
    from prompt_retriever.encoding.onnx import OnnxEncoder

    enc = OnnxEncoder("all-MiniLM-L6-v2")
    texts = ["sea", "a very long query about a lighthouse keeper who writes letters to the fog", "grief", "a dragon"]
    together = enc.encode(texts, batch_size=2)
    alone = np.vstack([enc.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)
    enc.set_threads(1)  # the serving setting: same numbers from a one-thread session
    assert np.allclose(enc.encode(texts, batch_size=2), together, atol=1e-5)
    assert enc.encode([]).shape == (0, 384)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        Encoder("all-MiniLM-L6-v2", backend="tensorrt")


def test_index_remembers_its_backend(tmp_path, small_prompts):
    from prompt_retriever.search.retriever import PromptRetriever

    r = PromptRetriever(backend="onnx-int8").index(small_prompts[:6])
    r.save(tmp_path / "idx")
    loaded = PromptRetriever.load(tmp_path / "idx")
    assert loaded.encoder.backend == "onnx-int8" and loaded.fingerprint == r.fingerprint
    q = small_prompts[2].title
    assert [h.prompt.id for h in loaded.search(q, 3)] == [h.prompt.id for h in r.search(q, 3)]

    from prompt_retriever.serving.server import build_retriever

    served = build_retriever(index_dir=tmp_path / "idx")  # the index's own backend: nothing re-encoded
    assert served.encoder.backend == "onnx-int8" and np.array_equal(served.embeddings, r.embeddings)
    switched = build_retriever(index_dir=tmp_path / "idx", backend="torch")
    assert switched.encoder.backend == "torch" and switched.fingerprint != r.fingerprint
    assert not np.array_equal(switched.embeddings, r.embeddings)  # documents re-encoded with torch


def test_onnx_backend_passes_allow_download_on(monkeypatch):
    from prompt_retriever.encoding import onnx as onnx_backend

    seen = []
    real = onnx_backend.load_model

    def spy(name, **kw):
        seen.append(kw.get("allow_download"))
        return real(name, **kw)

    monkeypatch.setattr(onnx_backend, "load_model", spy)
    Encoder("all-MiniLM-L6-v2", backend="onnx-int8", allow_download=True, use_cache=False)
    assert seen and all(v is True for v in seen)


def _payloads(prompts):
    return [{"genre": p.genre, "theme": p.theme} for p in prompts]


def test_qdrant_embedded_matches_exact_store_with_filters(bundled):
    prompts, vecs = bundled
    ids = [p.id for p in prompts]
    exact, qdrant = ExactStore(), QdrantStore(vecs.shape[1], path=":memory:")
    for store in (exact, qdrant):
        assert isinstance(store, VectorStore)
        store.upsert(ids, vecs, _payloads(prompts))
    assert len(exact) == len(qdrant) == len(prompts)
    queries = Encoder("all-MiniLM-L6-v2").encode_queries(
        ["haunted lighthouse", "memoir about food", "a poem about the sea", "robots and grief"]
    )
    for q in queries:
        for genre, theme in ((None, None), ("Horror", None), ("poetry", None), (None, "Grief"), ("Memoir", "family")):
            a = exact.search(q, 10, genre, theme)
            b = qdrant.search(q, 10, genre, theme)
            assert [x for x, _ in a] == [x for x, _ in b], (genre, theme)
            assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-4)


def test_stores_upsert_replace_and_delete(bundled):
    prompts, vecs = bundled
    for store in (ExactStore(), QdrantStore(vecs.shape[1])):
        store.upsert([p.id for p in prompts[:5]], vecs[:5], _payloads(prompts[:5]))
        store.upsert([prompts[0].id], vecs[5:6], _payloads(prompts[:1]))  # replace, not duplicate
        assert len(store) == 5
        assert store.search(vecs[5], 1)[0][0] == prompts[0].id
        store.delete([prompts[0].id, prompts[1].id])
        assert len(store) == 3 and prompts[0].id not in [i for i, _ in store.search(vecs[5], 5)]


def test_retriever_with_qdrant_store(small_prompts):
    from prompt_retriever.search.retriever import PromptRetriever

    r = PromptRetriever(store=QdrantStore(384)).index(small_prompts)
    exact = PromptRetriever().index(small_prompts)
    for q in ("lighthouse", "space robot", "train love"):
        assert [h.prompt.id for h in r.search(q, k=5)] == [h.prompt.id for h in exact.search(q, k=5)]
    r.remove([small_prompts[0].id])
    assert small_prompts[0].id not in [h.prompt.id for h in r.search("lighthouse keeper", k=8)]
