"""Search: `PromptRetriever` over a `VectorStore` (exact in-process or Qdrant), the cached index, saved
indexes (`persistence`) and deployable runs (`deployment`), and the systems it serves (`systems`)."""

from __future__ import annotations

from .deployment import read_system
from .filters import filter_key
from .indexcache import cached_retriever
from .retriever import Hit, IndexLoadError, PromptRetriever, SearchRequest
from .stores import ExactStore, QdrantStore, VectorStore, top_k_indices
from .systems import KINDS, SystemSpec, system_label

__all__ = [
    "KINDS",
    "ExactStore",
    "Hit",
    "IndexLoadError",
    "PromptRetriever",
    "QdrantStore",
    "SearchRequest",
    "SystemSpec",
    "VectorStore",
    "cached_retriever",
    "filter_key",
    "read_system",
    "system_label",
    "top_k_indices",
]
