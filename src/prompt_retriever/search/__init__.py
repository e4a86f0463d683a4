"""Search: `PromptRetriever` over a `VectorStore` (exact in-process or Qdrant), and the cached index."""

from __future__ import annotations

from .indexcache import cached_retriever
from .retriever import Hit, IndexLoadError, PromptRetriever, SearchRequest
from .stores import ExactStore, QdrantStore, VectorStore, top_k_indices

__all__ = [
    "ExactStore",
    "Hit",
    "IndexLoadError",
    "PromptRetriever",
    "QdrantStore",
    "SearchRequest",
    "VectorStore",
    "cached_retriever",
    "top_k_indices",
]
