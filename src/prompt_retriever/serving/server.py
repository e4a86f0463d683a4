"""Build the retriever a server uses: saved index or corpus, inference backend, vector store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..corpus import Prompt
from ..encoding.encoder import Encoder
from ..encoding.models import DEFAULT_MODEL
from ..errors import InputError
from ..search.retriever import PromptRetriever


def build_retriever(
    *,
    index_dir: Path | None = None,
    prompts: Sequence[Prompt] | None = None,
    model: str = DEFAULT_MODEL,
    backend: str | None = None,
    qdrant_url: str | None = None,
    qdrant_path: str | None = None,
    allow_download: bool | None = None,
) -> PromptRetriever:
    """`backend` None: a saved index's own backend, else torch. Documents and queries always come from
    the same backend: asking for another one than the index's re-encodes the prompts with it."""
    from ..search.indexcache import cached_retriever

    if index_dir is not None:
        retriever = PromptRetriever.load(index_dir, allow_download=allow_download)
        if backend is not None and retriever.encoder.backend != backend:
            retriever.encoder = Encoder(
                retriever.model_name,
                show_progress=True,
                allow_download=allow_download,
                backend=backend,
            )
            retriever.index(retriever.prompts)
    else:
        if not prompts:
            raise InputError("no prompts to serve")
        retriever = cached_retriever(
            prompts, model, show_progress=True, allow_download=allow_download, backend=backend or "torch"
        )
    if qdrant_url or qdrant_path:
        from ..search.stores import QdrantStore

        store = QdrantStore(retriever.encoder.dimension, url=qdrant_url, path=qdrant_path)
        retriever.store = store
        retriever._sync(retriever.prompts, retriever.embeddings)
    retriever.encoder.encode_queries(["warm-up"])  # load the model now, so /readyz means ready
    return retriever
