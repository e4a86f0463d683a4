"""`python -m prompt_retriever.cli`: the command line, as the `prompt-retriever` script runs it."""

import sys

from . import app

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
