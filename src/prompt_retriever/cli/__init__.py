"""Command-line interface: `prompt-retriever --help`. Handlers stay thin over the library.

- `app`: the Typer application and its global options (`--version`, `-q/--quiet`, `-v/--verbose`).
- `options`: the options several commands share, the training options and `train_config`.
- `output`: the consoles, escaping, errors and option checks; `inputs`: reading corpora and imports.
- One module per command group: `corpus`, `search` (search, index), `queries`, `evaluate` (evaluate,
  compare), `train` (train, soup, push), `pipeline`, `serve` (serve, demo), `versions` (promote,
  rollback, history), `feedback` (feedback export, purge, stats), `experiments` (experiments report).
"""

# The command modules register their commands on `app` in this order, the order --help lists them in.
from . import search as _search  # noqa: F401, I001
from . import evaluate as _evaluate  # noqa: F401
from . import train as _train  # noqa: F401
from . import pipeline as _pipeline  # noqa: F401
from . import serve as _serve  # noqa: F401
from . import corpus as _corpus  # noqa: F401
from . import queries as _queries  # noqa: F401
from . import versions as _versions  # noqa: F401
from . import feedback as _feedback  # noqa: F401
from . import experiments as _experiments  # noqa: F401
from .app import app, main
from .evaluate import compare, evaluate
from .output import safe
from .pipeline import pipeline
from .search import index, search, search_document
from .serve import demo, serve
from .train import push, soup, train_cmd

__all__ = [
    "app",
    "compare",
    "demo",
    "evaluate",
    "index",
    "main",
    "pipeline",
    "push",
    "safe",
    "search",
    "search_document",
    "serve",
    "soup",
    "train_cmd",
]
