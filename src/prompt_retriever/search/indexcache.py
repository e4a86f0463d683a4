"""A saved index per (corpus, model, template) in the user cache dir, rebuilt when any of them changes."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..corpus import Prompt, corpus_fingerprint
from ..encoding.encoder import DEFAULT_TEMPLATE, backend_fingerprint
from ..encoding.models import DEFAULT_MODEL
from ..fileio import cache_root, sha256_text
from .retriever import IndexLoadError, PromptRetriever
from .systems import SystemSpec

log = logging.getLogger(__name__)


def cached_retriever(
    prompts: Sequence[Prompt],
    model: str = DEFAULT_MODEL,
    *,
    template: str = DEFAULT_TEMPLATE,
    show_progress: bool = False,
    allow_download: bool | None = None,
    backend: str = "torch",
    system: SystemSpec | str | None = None,
) -> PromptRetriever:
    """Load the index for these prompts from the cache, or build and save it (per inference backend).
    `system` (dense, bm25, hybrid, hybrid-rrf) only changes how it searches, not what is cached."""
    system = SystemSpec(system) if isinstance(system, str) else (system or SystemSpec())
    key = sha256_text("|".join((corpus_fingerprint(prompts), backend_fingerprint(model, backend), template)))[:20]
    folder = cache_root() / "indexes" / key
    if (folder / "manifest.json").exists():
        try:
            return PromptRetriever.load(
                folder, model, show_progress=show_progress, allow_download=allow_download, system=system
            )
        except IndexLoadError as exc:
            log.warning("cached index unusable, rebuilding: %s", exc)
    retriever = PromptRetriever(
        model,
        template=template,
        show_progress=show_progress,
        allow_download=allow_download,
        backend=backend,
        system=system,
    )
    retriever.index(prompts)
    retriever.save(folder)
    return retriever
