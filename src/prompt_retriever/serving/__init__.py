"""Serving: the HTTP API and web page (`create_app`), the retriever a server uses and `serve`.

`create_app` is imported on first use: `serving.api` imports FastAPI, which `import prompt_retriever`
and the library's other stages do not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .server import build_retriever, serve

if TYPE_CHECKING:
    from .api import create_app

__all__ = ["build_retriever", "create_app", "serve"]


def __getattr__(name: str):
    if name == "create_app":
        from .api import create_app

        globals()["create_app"] = create_app  # looked up once
        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
