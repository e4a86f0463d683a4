"""prompt-retriever: measurably better search over a library of creative-writing prompts."""

from __future__ import annotations

import os

from ._version import __version__

# Hub downloads are off unless asked for (see models.py); set before huggingface_hub is imported.
if os.environ.get("PROMPT_RETRIEVER_ALLOW_DOWNLOAD", "").lower() not in ("1", "true", "yes"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
