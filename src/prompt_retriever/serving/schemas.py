"""The API's response shapes (pydantic models), and the one mapping from the library's `Prompt` and `Hit`
to them: the API's responses and `search --json` are built here, so both always have the same shape.

Imports pydantic only (no FastAPI), so the CLI can use it without the `serve` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

if TYPE_CHECKING:
    from ..corpus import Prompt
    from ..search.retriever import Hit


class PromptOut(BaseModel):
    id: str
    genre: str
    theme: str
    title: str
    text: str
    kind: str | None = None

    @classmethod
    def from_prompt(cls, prompt: Prompt) -> PromptOut:
        """The response part for one prompt."""
        return cls(
            id=prompt.id, genre=prompt.genre, theme=prompt.theme, title=prompt.title, text=prompt.text, kind=prompt.kind
        )


PromptMapper = Callable[["Prompt"], PromptOut]


class HitOut(BaseModel):
    rank: int
    score: float
    prompt: PromptOut

    @classmethod
    def from_hit(cls, hit: Hit, prompt_out: PromptMapper = PromptOut.from_prompt) -> HitOut:
        """One search result: its rank, its score rounded to 6 decimals and its prompt (`prompt_out`
        maps it, e.g. a cache of prompts already mapped)."""
        return cls(rank=hit.rank, score=round(hit.score, 6), prompt=prompt_out(hit.prompt))


class SearchOut(BaseModel):
    query: str
    k: int
    genre: str | None
    theme: str | None
    took_ms: float
    results: list[HitOut]
    query_id: str | None = Field(
        None, description="This search's id (UBI `query_id`): events about its results name it (POST /api/events)"
    )
    feedback: bool | None = Field(
        None, description="true when this server takes events about this search (POST /api/events); absent otherwise"
    )

    @model_serializer(mode="wrap")
    def _without_unset_feedback(self, handler: SerializerFunctionWrapHandler):  # no return type: keeps the schema
        """`query_id` and `feedback` only where set: the API sets them on every answer, `search --json`
        (a search no event can follow) leaves them out."""
        data = handler(self)
        for key in ("query_id", "feedback"):
            if data.get(key) is None:
                data.pop(key, None)
        return data

    @classmethod
    def build(
        cls,
        query: str,
        k: int,
        genre: str | None,
        theme: str | None,
        took_ms: float,
        hits: Iterable[Hit],
        *,
        prompt_out: PromptMapper = PromptOut.from_prompt,
        query_id: str | None = None,
        feedback: bool | None = None,
    ) -> SearchOut:
        """The answer to one search (`/api/search`, `search --json`): the query trimmed, the k and filters
        asked for, the time taken and the hits in rank order; the API adds the search's `query_id` and,
        with feedback on, `feedback`."""
        return cls(
            query=query.strip(),
            k=k,
            genre=genre,
            theme=theme,
            took_ms=took_ms,
            results=[HitOut.from_hit(h, prompt_out) for h in hits],
            query_id=query_id,
            feedback=feedback,
        )


class Facet(BaseModel):
    name: str
    count: int


class FacetsOut(BaseModel):
    total: int
    genres: list[Facet]
    themes: list[Facet]


class ErrorOut(BaseModel):
    error: str = Field(description="What is wrong with the request")
    detail: list[dict] | None = None


class DriftOut(BaseModel):
    """Prompts added, updated and removed since the system was chosen (a run) or the index was built."""

    added: int = 0
    updated: int = 0
    removed: int = 0


class InfoOut(BaseModel):
    """Which system answers, and the numbers it was chosen on (null when not served from a run)."""

    model_config = ConfigDict(populate_by_name=True)

    system: str = Field(description="A human name, e.g. 'fine-tuned all-MiniLM-L6-v2 + BM25 hybrid'")
    kind: str = Field(description="dense | bm25 | hybrid | hybrid-rrf | hybrid-adaptive")
    model: str | None
    backend: str | None
    prompts: int
    corpus_fingerprint: str
    dev_ndcg10: float | None = Field(None, alias="dev_ndcg@10")
    test_ndcg10: float | None = Field(None, alias="test_ndcg@10")
    drift: DriftOut = Field(
        default_factory=DriftOut,
        description="How far the collection moved by live updates since the system was chosen (its numbers "
        "were measured before)",
    )
    run: str | None = Field(None, description="The name of the run folder served, if a run")
    engine: str | None = Field(None, description="What searches: exact (in process), edge or qdrant")
    fusion: str | None = Field(
        None, description="How a weighted hybrid fuses: corpus (whole-corpus bounds) or candidates (each side's top)"
    )
    fusion_depth: int | None = Field(None, description="Candidates per side when `fusion` is candidates")
    created: str | None = Field(None, description="When the run served was made (ISO 8601 UTC), if a run")
    model_fingerprint: str | None = Field(None, description="The model answering: name and weights hash")
    current_since: str | None = Field(
        None, description="Since when the run served is its runs folder's current one (`promote`), if it is"
    )
    current_run: str | None = Field(
        None,
        description="The run its runs folder names current now (`promote`, `rollback`), if it has one: another "
        "than `run` while `serve --runs` has not switched yet (or cannot: it keeps trying)",
    )
    feedback: bool | None = Field(
        None,
        description="True when this server records searches and what writers do with results (`serve "
        "--feedback`): the page then sends its client id from its first search on",
    )


class PromptIn(BaseModel):
    """A prompt to add or update (`PUT /api/prompts/{id}`): the fields of a corpus line, under its rules."""

    model_config = ConfigDict(extra="forbid")

    genre: str = Field(max_length=1000)
    theme: str = Field(max_length=1000)
    title: str = Field(max_length=1000)
    text: str = Field(max_length=20_000)
    kind: str | None = Field(None, max_length=1000)


class WriteOut(BaseModel):
    """What a write did (`added`, `updated`, `unchanged` or `removed`), and the drift after it."""

    status: str
    id: str
    prompts: int
    drift: DriftOut


class ReloadIn(BaseModel):
    """`POST /api/admin/reload`: the run folder to switch to (none: reload the one served)."""

    model_config = ConfigDict(extra="forbid")

    run: str | None = Field(None, max_length=4096)


class HealthOut(BaseModel):
    status: str
    prompts: int | None = None
    model: str | None = None
