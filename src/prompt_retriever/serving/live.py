"""`LiveState`: the serving state that changes while the server runs. Handlers read `live.state` (one
`ServingState`, never changed once built) at the start of a request and use that one to the end, so a
request in flight finishes on the state it started on. A write (a prompt put or deleted) or a switch to
another run builds the new retriever and state beside the one serving, persists the change, and then
swaps the reference in one assignment: searches keep being answered throughout.

>>> live = LiveState(retriever)                                # doctest: +SKIP
>>> live.put(Prompt("p-1", "Horror", "Grief", "Title", "text"))  # doctest: +SKIP
'added'
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ..corpus import Prompt
from ..errors import InputError, MissingError
from ..search.live import locked, plan_changes
from ..search.retriever import Hit, PromptRetriever, SearchRequest
from .state import ServingState

log = logging.getLogger("prompt_retriever.serve")

# Builds the retriever to serve from a run folder (None: the one served at start, again).
Loader = Callable[[Path | None], PromptRetriever]


class LiveState:
    """The current `ServingState` and the operations that replace it: `put`, `delete` and `reload`.
    Writes and switches run one at a time (a lock); searches never wait for them."""

    def __init__(self, retriever: PromptRetriever, *, loader: Loader | None = None):
        self.state = ServingState(retriever)
        self.loader = loader
        self._lock = threading.Lock()
        self.switches = 0

    # ------------------------------------------------------------------ searching
    @staticmethod
    def search_batch(items: Sequence[tuple[PromptRetriever, SearchRequest]]) -> list[list[Hit]]:
        """A batch of (retriever, request) pairs, each answered by the retriever its request started on
        (one `search_requests` call per retriever: almost always one)."""
        groups: dict[int, tuple[PromptRetriever, list[int]]] = {}
        for i, (retriever, _) in enumerate(items):
            groups.setdefault(id(retriever), (retriever, []))[1].append(i)
        out: list[list[Hit]] = [[] for _ in items]
        for retriever, idx in groups.values():
            for i, hits in zip(idx, retriever.search_requests([items[i][1] for i in idx]), strict=True):
                out[i] = hits
        return out

    # ------------------------------------------------------------------ writing
    def _writable(self) -> tuple[PromptRetriever, Path]:
        retriever = self.state.retriever
        target = retriever.__dict__.get("source")
        if target is None:
            raise InputError("this server has no index folder to write to: serve --index DIR or --run RUN")
        return retriever, target

    def _swap(self, retriever: PromptRetriever) -> None:
        self.state = ServingState(retriever)  # one assignment: a request sees the old state or the new

    def put(self, prompt: Prompt) -> str:
        """Add `prompt`, or update the one of its id: persisted (written whole beside the index, then
        swapped in) before the served state is replaced. 'added', 'updated' or 'unchanged'."""
        with self._lock:
            current, target = self._writable()
            with locked(target):
                changes = plan_changes(current._by_id, [prompt])  # InputError: a title clash
                if not changes.to_write:
                    return "unchanged"
                new = current.copy()
                new.add(changes.to_write)
                new.save_live(target)
            self._swap(new)
            return "added" if changes.added else "updated"

    def delete(self, prompt_id: str) -> None:
        """Remove the prompt `prompt_id` (MissingError if there is none), persisted before it is swapped in."""
        with self._lock:
            current, target = self._writable()
            if current.get(prompt_id) is None:
                raise MissingError(f"no prompt with id {prompt_id!r}")
            with locked(target):
                new = current.copy()
                new.remove([prompt_id])
                new.save_live(target)
            self._swap(new)

    # ------------------------------------------------------------------ switching
    def reload(self, run_dir: Path | None = None) -> ServingState:
        """Build the retriever of `run_dir` (None: what was served at start, read again from disk), then
        swap it in; a failure leaves the old one serving."""
        if self.loader is None:
            raise InputError("this server cannot reload: it was not started from a run or an index")
        with self._lock:
            retriever = self.loader(run_dir)
            self._swap(retriever)
            self.switches += 1
        log.info("now serving %s (%d prompts)", self.state.info.system, len(retriever))
        return self.state
