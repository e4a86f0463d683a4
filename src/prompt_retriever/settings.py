"""Every environment variable the package reads, in one place.

The bottom layer: it imports nothing of the package. Each variable has its name as a constant and a small
function that reads it, so a reader elsewhere calls the function instead of `os.environ` and the list of
variables a user can set is this module.

- `PROMPT_RETRIEVER_ALLOW_DOWNLOAD`: `1`/`true`/`yes` lets models be fetched from the Hugging Face hub;
  otherwise the hub client is switched offline (`HF_HUB_OFFLINE=1`) when the package is imported.
- `PROMPT_RETRIEVER_LLM_BASE_URL`, `PROMPT_RETRIEVER_LLM_MODEL`: the default LLM endpoint of `pipeline`.
- `PROMPT_RETRIEVER_LLM_API_KEY`, then `OPENAI_API_KEY`: the key sent to an LLM endpoint.
- `HF_TOKEN`, then `HUGGING_FACE_HUB_TOKEN`: the token `push` uploads with.
- `PROMPT_RETRIEVER_CACHE_DIR`: root of the caches (default: the user cache folder).
- `QDRANT_API_KEY`: the key of a Qdrant server.
- `PROMPT_RETRIEVER_ADMIN_TOKEN`: turns on the server's write and admin endpoints (`PUT`/`DELETE
  /api/prompts/{id}`, `POST /api/admin/reload`), which then require `Authorization: Bearer TOKEN`.
  Unset (the default), those routes do not exist.
"""

from __future__ import annotations

import os

ALLOW_DOWNLOAD_ENV = "PROMPT_RETRIEVER_ALLOW_DOWNLOAD"
HF_OFFLINE_ENV = "HF_HUB_OFFLINE"
TOKENIZERS_PARALLELISM_ENV = "TOKENIZERS_PARALLELISM"
LLM_BASE_URL_ENV = "PROMPT_RETRIEVER_LLM_BASE_URL"
LLM_MODEL_ENV = "PROMPT_RETRIEVER_LLM_MODEL"
LLM_API_KEY_ENVS = ("PROMPT_RETRIEVER_LLM_API_KEY", "OPENAI_API_KEY")
HUB_TOKEN_ENVS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
CACHE_DIR_ENV = "PROMPT_RETRIEVER_CACHE_DIR"
QDRANT_API_KEY_ENV = "QDRANT_API_KEY"
ADMIN_TOKEN_ENV = "PROMPT_RETRIEVER_ADMIN_TOKEN"
MIN_ADMIN_TOKEN_CHARS = 16

_TRUE = ("1", "true", "yes")


def _first(names: tuple[str, ...]) -> str | None:
    """The value of the first of `names` that is set and not empty."""
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def downloads_allowed_by_env() -> bool:
    """Whether `PROMPT_RETRIEVER_ALLOW_DOWNLOAD` allows hub downloads."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").lower() in _TRUE


def apply_process_defaults() -> None:
    """At import: hub downloads off unless allowed (before huggingface_hub is imported), and tokenizers'
    own threads off (the toolkit parallelises itself). A value the user set is kept."""
    if not downloads_allowed_by_env():
        os.environ.setdefault(HF_OFFLINE_ENV, "1")
    os.environ.setdefault(TOKENIZERS_PARALLELISM_ENV, "false")


def set_hub_offline_env(offline: bool) -> None:
    """Switch the hub client's environment flag for this process (and the processes it starts)."""
    os.environ[HF_OFFLINE_ENV] = "1" if offline else "0"


def llm_base_url_from_env() -> str | None:
    """The default LLM endpoint (`PROMPT_RETRIEVER_LLM_BASE_URL`)."""
    return os.environ.get(LLM_BASE_URL_ENV) or None


def llm_model_from_env() -> str | None:
    """The default model at the LLM endpoint (`PROMPT_RETRIEVER_LLM_MODEL`)."""
    return os.environ.get(LLM_MODEL_ENV) or None


def llm_api_key() -> str | None:
    """The LLM endpoint's API key, if one is set."""
    return _first(LLM_API_KEY_ENVS)


def hub_token() -> str | None:
    """The Hugging Face hub token, if one is set."""
    return _first(HUB_TOKEN_ENVS)


def cache_dir() -> str | None:
    """`PROMPT_RETRIEVER_CACHE_DIR`, if set."""
    return os.environ.get(CACHE_DIR_ENV) or None


def qdrant_api_key() -> str | None:
    """`QDRANT_API_KEY`, if set."""
    return os.environ.get(QDRANT_API_KEY_ENV) or None


def admin_token() -> str | None:
    """`PROMPT_RETRIEVER_ADMIN_TOKEN`, if set (the server's write endpoints are off without it)."""
    return os.environ.get(ADMIN_TOKEN_ENV) or None
