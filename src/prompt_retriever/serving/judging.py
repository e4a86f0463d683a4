"""The owner's judging page: rate the served system's top results of a query 0, 1 or 2 (Quepid-style) and
save them as a judged query set (`feedback.owner`), the file `evaluate --judged FILE` reads.

    GET  /judge                  the page (static: judge.html, /static/judge.js, style.css)
    GET  /api/judge/queries      the log's most searched recent queries (with --feedback; else none)
    GET  /api/judge/results?q=&k=    the served system's top k for q, with the grades already saved
    POST /api/judgments          {"query": "...", "grades": {"p-7": 2, "p-9": 0}}: merged into q's line

Registered only when the server has both an admin token (`PROMPT_RETRIEVER_ADMIN_TOKEN`) and a judgments
file (`serve --judgments FILE`); otherwise every one of them is a 404, as if this module did not exist.
The API routes need `Authorization: Bearer TOKEN` (`admin.check_token`, before anything else is read:
401); the page asks for the token and keeps it in the tab's sessionStorage only. Searches made here are
the owner's, not a writer's: they are neither recorded in the feedback log nor counted in /metrics.

>>> app = create_app(retriever, admin_token=TOKEN, judgments=OwnerJudgments.load("judged.jsonl"))  # doctest: +SKIP
>>> httpx.post(base + "/api/judgments", json={"query": "ghost ship", "grades": {"p-1": 2}},
...            headers={"Authorization": f"Bearer {TOKEN}"}).json()["status"]                   # doctest: +SKIP
'saved'
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Header, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.concurrency import run_in_threadpool

from ..corpus import ID_PATTERN, QUERY_PATTERN, query_problem
from ..errors import InputError
from ..feedback.owner import OwnerJudgments, frequent_queries
from ..feedback.records import iso, now
from ..search.retriever import SearchRequest
from .admin import check_token
from .live import LiveState
from .middleware import ApiError
from .routes import MAX_K, MAX_QUERY_CHARS, static_dir
from .schemas import ErrorOut, PromptOut
from .state import ServingState

log = logging.getLogger("prompt_retriever.serve")

RECENT_DAYS = 30  # "recent" queries of the log: searched within this many days
QUERIES_SHOWN = 50

PromptId = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern, max_length=120)]
Grade = Annotated[int, Field(strict=True, ge=0, le=2)]  # strict: true, 1.0 or "1" is no grade


class JudgmentIn(BaseModel):
    """The owner's grades for some results of one query."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, pattern=QUERY_PATTERN, description="The query, as searched"
    )
    grades: dict[PromptId, Grade] = Field(
        min_length=1,
        max_length=MAX_K,
        description="prompt id -> 0 (not relevant), 1 (relevant) or 2 (highly relevant); ids of the served corpus",
    )


class JudgmentOut(BaseModel):
    status: Literal["saved"]
    query: str
    relevant: dict[str, int] = Field(description="The line's prompts graded 1 or 2, this save merged in")
    nonrelevant: list[str] = Field(description="The line's prompts graded 0")
    timestamp: str
    queries: int = Field(description="Queries judged in the file")


class LoggedQueryOut(BaseModel):
    query: str
    count: int = Field(description="Searches of it within `days`")
    last: str = Field(description="When it was last searched (UTC)")
    judged: bool = Field(description="Whether the judgments file has a line for it")


class LoggedQueriesOut(BaseModel):
    feedback: bool = Field(description="Whether the server keeps a search log (serve --feedback)")
    days: int
    queries: list[LoggedQueryOut]


class JudgedHitOut(BaseModel):
    rank: int
    score: float
    prompt: PromptOut
    grade: int | None = Field(description="The grade saved for this prompt and query, None if none")


class JudgeResultsOut(BaseModel):
    query: str
    k: int
    results: list[JudgedHitOut]
    saved: dict[str, int] = Field(description="Every grade saved for this query, results not shown here included")
    timestamp: str | None = Field(description="When this query was last judged, None if never")


ID_RULE = "1-120 letters, digits, '.', '_', '-'; starts alphanumeric"


def _problem(error: dict) -> str:
    """One of pydantic's errors about a judgment as a readable message (the middleware's reading of a
    location drops a part named `query`, the name of a URL's query string, so the body is read here)."""
    loc = tuple(str(x) for x in error.get("loc", ()))
    if not loc:
        return 'body: must be a JSON object {"query": "...", "grades": {"prompt id": 0, 1 or 2}}'
    if loc == ("query",) and error.get("type") == "string_pattern_mismatch":
        return "query: empty query: it has no visible character"
    if len(loc) == 3 and loc[0] == "grades" and loc[2] == "[key]":
        return f"grades: {loc[1]!r} is not a prompt id ({ID_RULE})"
    return f"{'.'.join(loc) or 'body'}: {error.get('msg', 'invalid')}"


def parse_judgment(raw: Any) -> JudgmentIn:
    """`raw` (the JSON body) as a `JudgmentIn`; 422 naming each problem otherwise.

    >>> parse_judgment({"query": "ghost ship", "grades": {"p-1": 3}})   # doctest: +SKIP
    ApiError: grades.p-1: Input should be less than or equal to 2
    """
    try:
        return JudgmentIn.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(422, "; ".join(_problem(e) for e in exc.errors())) from None


def title_alias(state: ServingState):
    """Maps a key of a judged line to a prompt id of `state`: an id as it is, a title (a file written by
    hand) to its prompt's id; None for neither."""
    by_title: dict[str, str] = {}

    def alias(key: str) -> str | None:
        if key in state.prompts:
            return key
        if not by_title:
            by_title.update((p.title.casefold(), p.id) for p in state.prompts.values())
        return by_title.get(key.casefold())

    return alias


def checked_query(text: str) -> str:
    """`text` with its white space runs made one space; 422 when it is no query (`corpus.query_problem`)."""
    query = " ".join(text.split())
    if problem := query_problem(query):
        raise ApiError(422, f"query: {problem}")
    return query


def add_judging_routes(app: FastAPI, live: LiveState, token: str | None, judgments: OwnerJudgments | None) -> None:
    """The page and the routes of the module's docstring, only with both `token` and `judgments`. The
    results are searched through `app.state.batcher`; the log is `app.state.feedback`'s store, read in
    a thread."""
    if token is None or judgments is None:
        return
    web = static_dir()

    async def authorized(authorization: str | None = Header(None, include_in_schema=False)) -> None:
        check_token(token, authorization)  # before the body or query is validated: no token, no 422 either

    auth = [Depends(authorized)]
    errors = {401: {"model": ErrorOut}, 422: {"model": ErrorOut}}

    @app.get("/judge", include_in_schema=False)
    async def judge_page() -> FileResponse:
        return FileResponse(web / "judge.html", media_type="text/html")

    @app.get("/static/judge.js", include_in_schema=False)  # before /static/{name}: it names four files only
    async def judge_script() -> FileResponse:
        return FileResponse(web / "judge.js", media_type="text/javascript")

    @app.get("/api/judge/queries", response_model=LoggedQueriesOut, dependencies=auth, responses=errors)
    async def logged_queries(
        limit: int = Query(QUERIES_SHOWN, ge=1, le=500, description="How many queries, the most searched first"),
        days: int = Query(RECENT_DAYS, ge=1, le=3650, description="Only searches of the last this many days"),
    ) -> LoggedQueriesOut:
        recorder = app.state.feedback
        if recorder is None:
            return LoggedQueriesOut(feedback=False, days=days, queries=[])

        def read() -> list[LoggedQueryOut]:
            since = now() - timedelta(days=days)
            found = frequent_queries(recorder.store.queries(since), since=since, limit=limit)
            return [
                LoggedQueryOut(query=q.query, count=q.count, last=iso(q.last), judged=judgments.judged(q.query))
                for q in found
            ]

        try:
            queries = await run_in_threadpool(read)  # the whole log is read: never on the event loop
        except Exception as exc:  # noqa: BLE001 - the store is down: said so, the page still takes typed queries
            log.warning("judging: the feedback store could not be read: %s", exc)
            raise ApiError(
                503, "the feedback store is unavailable: type a query instead", {"Retry-After": "5"}
            ) from None
        return LoggedQueriesOut(feedback=True, days=days, queries=queries)

    @app.get("/api/judge/results", response_model=JudgeResultsOut, dependencies=auth, responses=errors)
    async def judge_results(
        q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, pattern=QUERY_PATTERN, description="The query"),
        k: int = Query(10, ge=1, le=MAX_K, description="How many of the top results to judge"),
    ) -> JudgeResultsOut:
        query = checked_query(q)
        state = live.state
        hits = await app.state.batcher.submit((state.retriever, SearchRequest(query, k, None, None)))
        alias = title_alias(state)

        def read() -> tuple[dict[str, int], dict | None]:  # the lock may be held by a save: not on the loop
            return judgments.grades(query, alias), judgments.line(query)

        saved, line = await run_in_threadpool(read)
        results = [
            JudgedHitOut(
                rank=h.rank, score=round(h.score, 6), prompt=state.prompt_out(h.prompt), grade=saved.get(h.prompt.id)
            )
            for h in hits
        ]
        stamp = line.get("timestamp") if line is not None else None
        return JudgeResultsOut(
            query=query, k=k, results=results, saved=saved, timestamp=stamp if isinstance(stamp, str) else None
        )

    body_doc = {"content": {"application/json": {"schema": JudgmentIn.model_json_schema()}}, "required": True}

    @app.post(
        "/api/judgments",
        response_model=JudgmentOut,
        dependencies=auth,
        responses=errors,
        openapi_extra={"requestBody": body_doc},  # the body is validated in the route (`parse_judgment`)
    )
    async def post_judgments(raw: Any = Body(..., include_in_schema=False)) -> JudgmentOut:
        body = parse_judgment(raw)
        query = checked_query(body.query)
        state = live.state
        if unknown := sorted(i for i in body.grades if i not in state.prompts):
            shown = ", ".join(repr(i) for i in unknown[:5]) + (
                f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            )
            raise ApiError(422, f"grades: no prompt with id {shown} in the served corpus")

        def save() -> tuple[dict, int]:
            return judgments.put(query, dict(body.grades), alias=title_alias(state)), len(judgments)

        try:
            line, count = await run_in_threadpool(save)
        except InputError as exc:  # no relevant prompt left for the query
            raise ApiError(422, str(exc)) from None
        except OSError as exc:  # a full disk, a folder made read-only: nothing was changed
            log.error("judging: could not save %s: %s", judgments.path, exc)
            raise ApiError(503, f"the judgments could not be saved: {exc.strerror or exc}") from None
        return JudgmentOut(
            status="saved",
            query=line["query"],
            relevant=line["relevant"],
            nonrelevant=line["nonrelevant"],
            timestamp=line["timestamp"],
            queries=count,
        )
