"""Serving: the HTTP API and web page (`create_app`), the response shapes (`SearchOut`, `HitOut`,
`PromptOut`, shared with `search --json`), the retriever a server uses and `serve`.

`create_app` and the response shapes are imported on first use: `serving.api` imports FastAPI and
`serving.schemas` pydantic, which `import prompt_retriever` and the library's other stages do not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .server import build_retriever, serve

if TYPE_CHECKING:
    from .api import create_app
    from .schemas import HitOut, PromptOut, SearchOut

__all__ = ["HitOut", "PromptOut", "SearchOut", "build_retriever", "create_app", "serve"]

_LAZY = {"create_app": "api", "HitOut": "schemas", "PromptOut": "schemas", "SearchOut": "schemas"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
