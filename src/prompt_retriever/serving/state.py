"""`ServingState`: what the API's handlers read while serving one `PromptRetriever` (prompts by id, genre
and theme counts, each prompt's response part, which system answers), and the library calls they make."""

from __future__ import annotations

import random
from collections import Counter

from ..corpus import Prompt
from ..search.filters import FilterNames
from ..search.retriever import PromptRetriever
from ..search.versions import current_since, run_created
from .middleware import ApiError
from .schemas import Facet, FacetsOut, InfoOut, PromptOut


def run_facts(retriever: PromptRetriever) -> dict:
    """What `/api/info` says beyond `describe()`: the model's fingerprint and, for a run, when it was
    made and since when it is the current run of its runs folder (`search.versions`)."""
    run_info = retriever.run_info or {}
    model = None if retriever.system.kind == "bm25" else run_info.get("model_fingerprint") or retriever.fingerprint
    facts = {"model_fingerprint": model}
    run_dir = retriever.__dict__.get("run_dir")
    if run_dir is not None:
        facts.update(created=run_created(run_dir, run_info), current_since=current_since(run_dir))
    return facts


class ServingState:
    """What the handlers read: the retriever, its prompts by id, genre/theme counts, and each prompt's
    response part. Never changed once built: a live update or a switch builds a new one (`LiveState`).
    Ready means prompts are loaded."""

    def __init__(self, retriever: PromptRetriever):
        self.retriever = retriever
        self.prompts = {p.id: p for p in retriever.prompts}
        self.genres = Counter(p.genre for p in retriever.prompts)
        self.themes = Counter(p.theme for p in retriever.prompts)
        self._names = {"genre": FilterNames(self.genres), "theme": FilterNames(self.themes)}
        self._outs: dict[str, PromptOut] = {}
        self.info = InfoOut(**{**run_facts(retriever), **retriever.describe()})
        self.run_name: str = self.info.run or ""  # the run label of the metrics ("": not serving a run)
        self._rng = random.Random()

    @property
    def ready(self) -> bool:
        return bool(self.prompts)

    def prompt_out(self, p: Prompt) -> PromptOut:
        """`PromptOut.from_prompt(p)`, mapped once per prompt."""
        out = self._outs.get(p.id)
        if out is None:
            out = self._outs[p.id] = PromptOut.from_prompt(p)
        return out

    def check_filter(self, value: str | None, what: str) -> str | None:
        """The canonical genre/theme for a case-insensitive filter value (`FilterNames`); None for no filter."""
        try:
            return self._names[what].canonical(value)
        except KeyError:
            raise ApiError(400, f"unknown {what} {value.strip()!r}; see /api/facets") from None

    def filters(self, genre: str | None, theme: str | None) -> tuple[str | None, str | None]:
        return self.check_filter(genre, "genre"), self.check_filter(theme, "theme")

    def prompt(self, prompt_id: str) -> Prompt:
        if prompt_id not in self.prompts:
            raise ApiError(404, f"no prompt with id {prompt_id!r}")
        return self.prompts[prompt_id]

    def random_prompt(self, genre: str | None, theme: str | None) -> Prompt:
        pool = [p for p in self.prompts.values() if genre in (None, p.genre) and theme in (None, p.theme)]
        if not pool:
            raise ApiError(404, "no prompt matches those filters")
        return self._rng.choice(pool)

    def facets(self) -> FacetsOut:
        return FacetsOut(
            total=len(self.prompts),
            genres=[Facet(name=n, count=c) for n, c in sorted(self.genres.items())],
            themes=[Facet(name=n, count=c) for n, c in sorted(self.themes.items())],
        )
