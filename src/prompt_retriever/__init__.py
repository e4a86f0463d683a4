"""prompt-retriever: measurably better search over a library of creative-writing prompts."""

from __future__ import annotations

from ._version import __version__
from .settings import apply_process_defaults

# Hub downloads are off unless asked for (see models.py); set before huggingface_hub is imported.
apply_process_defaults()

from .corpus import CorpusError, Prompt, load_corpus, read_corpus  # noqa: E402
from .encoding.models import DEFAULT_MODEL, ModelNotFoundError, load_model, resolve_model  # noqa: E402
from .search.retriever import Hit, IndexLoadError, PromptRetriever  # noqa: E402

__all__ = [
    "DEFAULT_MODEL",
    "CorpusError",
    "Hit",
    "IndexLoadError",
    "ModelNotFoundError",
    "Prompt",
    "PromptRetriever",
    "__version__",
    "load_corpus",
    "load_model",
    "read_corpus",
    "resolve_model",
]
