"""Encoding: model lookup (bundled, local or hub), the text embedded per prompt, and the `Encoder`."""

from __future__ import annotations

from .encoder import DEFAULT_TEMPLATE, DOCUMENT_TEMPLATES, Encoder, backend_fingerprint, check_template, prompt_document
from .models import DEFAULT_MODEL, REGISTRY, ModelNotFoundError, load_model, model_fingerprint, resolve_model

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TEMPLATE",
    "DOCUMENT_TEMPLATES",
    "REGISTRY",
    "Encoder",
    "ModelNotFoundError",
    "backend_fingerprint",
    "check_template",
    "load_model",
    "model_fingerprint",
    "prompt_document",
    "resolve_model",
]
