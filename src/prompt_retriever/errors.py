"""The errors the toolkit raises for expected failures (bad input, missing model, stale index, ...).

Every one derives from `PromptRetrieverError` (so does `corpus.CorpusError`, which carries its report),
so the CLI turns exactly these into a one-line message and lets anything else (a bug) surface as a
traceback. Each also derives from the builtin a caller would
expect (`ValueError` for bad input, `RuntimeError` for an environment problem), so `except ValueError`
in user code keeps working.
"""

from __future__ import annotations


class PromptRetrieverError(Exception):
    """Base of every expected error."""


class InputError(PromptRetrieverError, ValueError):
    """An argument, option or file content the toolkit cannot use; the message says what and where."""


class MissingError(PromptRetrieverError, KeyError):
    """A named thing (split, prompt id) that is not there."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "missing"


class NotFoundError(PromptRetrieverError, FileNotFoundError):
    """A path that does not hold what it should (e.g. not a golden set)."""


class LeakageError(PromptRetrieverError, AssertionError):
    """A query or prompt in a split it must not be in."""


class SoupError(PromptRetrieverError, ValueError):
    """Ingredients that cannot be averaged into one model."""


class ModelNotFoundError(PromptRetrieverError, RuntimeError):
    """A model that is neither bundled, a local folder nor in the local hub cache."""


class IndexLoadError(PromptRetrieverError, RuntimeError):
    """A saved index that is corrupt, or was built with other model weights or another corpus."""


class LLMError(PromptRetrieverError, RuntimeError):
    """An LLM endpoint that failed after every retry, or answered with an error that retrying cannot fix."""


class PushError(PromptRetrieverError, RuntimeError):
    """A model upload to the Hub that failed (the message never holds the token)."""


class OutputDirError(PromptRetrieverError, FileExistsError):
    """An output folder the toolkit refuses to write or replace: it holds files it did not make, or it is
    `.`, a parent of the current folder, the home folder or `/` (see `fileio.check_out_dir`)."""
