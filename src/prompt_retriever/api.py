"""HTTP API and web page over a `PromptRetriever` (FastAPI). Handlers stay thin over the library.

    GET /api/search?q=&k=&genre=&theme=   ranked prompts
    GET /api/prompts/{id}                 one prompt
    GET /api/facets                       genres and themes with counts
    GET /api/random?genre=&theme=         a random prompt ("surprise me")
    GET /healthz, /readyz                 liveness, readiness (index loaded)
    GET /                                 the web page (static files, no CDN, works offline)

Client mistakes get a 4xx JSON error naming the problem; concurrent queries are encoded together in
batches off the event loop (`QueryBatcher`); the
request log carries no query text unless `log_queries` is on; CORS is off unless origins are given.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi import Path as FastPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .retriever import PromptRetriever

log = logging.getLogger("prompt_retriever.api")
MAX_QUERY_CHARS = 512
MAX_K = 100
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,120}$")


class PromptOut(BaseModel):
    id: str
    genre: str
    theme: str
    title: str
    text: str
    kind: str | None = None


class HitOut(BaseModel):
    rank: int
    score: float
    prompt: PromptOut


class SearchOut(BaseModel):
    query: str
    k: int
    genre: str | None
    theme: str | None
    took_ms: float
    results: list[HitOut]


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


class HealthOut(BaseModel):
    status: str
    prompts: int | None = None
    model: str | None = None


class QueryBatcher:
    """Encodes concurrent queries together, off the event loop.

    One worker takes the first waiting query, gathers whatever else arrives within `max_wait` seconds
    (up to `max_batch`), and encodes them in one call in a thread. Idle, a query waits `max_wait` at
    most; under load batches grow on their own, which is what keeps a 2-core server responsive.
    """

    def __init__(self, encode, max_batch: int = 32, max_wait: float = 0.002):
        self.encode_fn, self.max_batch, self.max_wait = encode, max_batch, max_wait
        self._workers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> (queue, task)
        self.batches = 0

    async def encode(self, text: str):
        loop = asyncio.get_running_loop()
        entry = self._workers.get(loop)
        if entry is None or entry[1].done():  # one queue and worker per event loop
            queue: asyncio.Queue = asyncio.Queue()
            entry = (queue, loop.create_task(self._run(queue)))
            self._workers[loop] = entry
        fut = loop.create_future()
        await entry[0].put((text, fut))
        return await fut

    async def _run(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            try:
                vectors = await asyncio.to_thread(self.encode_fn, [text for text, _ in batch])
            except Exception as exc:  # every waiting request gets the error, the worker lives on
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            for (_, fut), vec in zip(batch, vectors, strict=True):
                if not fut.done():
                    fut.set_result(vec)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def _prompt_out(p) -> PromptOut:
    return PromptOut(id=p.id, genre=p.genre, theme=p.theme, title=p.title, text=p.text, kind=p.kind)


def static_dir() -> Path:
    return Path(str(resources.files("prompt_retriever") / "web"))


def create_app(
    retriever: PromptRetriever,
    *,
    log_queries: bool = False,
    cors_origins: Sequence[str] = (),
    max_batch: int = 32,
) -> FastAPI:
    app = FastAPI(
        title="prompt-retriever",
        version="1",
        description="Search creative-writing prompts.",
        responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    )
    state = {"ready": True}
    prompts = {p.id: p for p in retriever.prompts}
    genres = Counter(p.genre for p in retriever.prompts)
    themes = Counter(p.theme for p in retriever.prompts)
    genre_names = {g.casefold(): g for g in genres}
    theme_names = {t.casefold(): t for t in themes}
    batcher = QueryBatcher(retriever.encoder.encode_queries, max_batch=max_batch)
    app.state.batcher = batcher
    rng = random.Random()

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET"])

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path"))
            if where == "q" and e.get("type") in ("string_too_short", "string_pattern_mismatch"):
                parts.append("empty query: q must contain some text")
            else:
                parts.append(f"{where}: {e.get('msg', 'invalid')}")
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        return JSONResponse({"error": "; ".join(parts) or "invalid request", "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.middleware("http")
    async def access_log(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        path = str(request.url) if log_queries else request.url.path
        log.info("%s %s %s %.1fms", request.method, path, response.status_code, (time.perf_counter() - t0) * 1000)
        return response

    def check_filter(value: str | None, names: dict[str, str], what: str) -> str | None:
        if value is None or not value.strip():
            return None
        if value.strip().casefold() not in names:
            raise ApiError(400, f"unknown {what} {value.strip()!r}; see /api/facets")
        return names[value.strip().casefold()]

    genre_doc = {"description": "Only this genre (case-insensitive)", "json_schema_extra": {"enum": sorted(genres)}}
    theme_doc = {"description": "Only this theme (case-insensitive)", "json_schema_extra": {"enum": sorted(themes)}}

    @app.get("/api/search", response_model=SearchOut)
    async def search(
        q: str = Query(
            ..., description="What you feel like writing about", min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S"
        ),
        k: int = Query(10, ge=1, le=MAX_K),
        genre: str | None = Query(None, max_length=200, **genre_doc),
        theme: str | None = Query(None, max_length=200, **theme_doc),
    ) -> SearchOut:
        g = check_filter(genre, genre_names, "genre")
        t = check_filter(theme, theme_names, "theme")
        t0 = time.perf_counter()

        vector = await batcher.encode(q.strip())
        hits = (await asyncio.to_thread(retriever.search_vectors, vector[None, :], k, g, t))[0]
        return SearchOut(
            query=q.strip(),
            k=k,
            genre=g,
            theme=t,
            took_ms=round((time.perf_counter() - t0) * 1000, 2),
            results=[HitOut(rank=h.rank, score=round(h.score, 6), prompt=_prompt_out(h.prompt)) for h in hits],
        )

    @app.get("/api/prompts/{prompt_id}", response_model=PromptOut)
    async def get_prompt(
        prompt_id: str = FastPath(..., pattern=ID_PATTERN.pattern, description="lower-case letters, digits, '-'"),
    ) -> PromptOut:
        if prompt_id not in prompts:
            raise ApiError(404, f"no prompt with id {prompt_id!r}")
        return _prompt_out(prompts[prompt_id])

    @app.get("/api/facets", response_model=FacetsOut)
    async def facets() -> FacetsOut:
        return FacetsOut(
            total=len(prompts),
            genres=[Facet(name=n, count=c) for n, c in sorted(genres.items())],
            themes=[Facet(name=n, count=c) for n, c in sorted(themes.items())],
        )

    @app.get("/api/random", response_model=PromptOut)
    async def random_prompt(
        genre: str | None = Query(None, max_length=200, **genre_doc),
        theme: str | None = Query(None, max_length=200, **theme_doc),
    ) -> PromptOut:
        g = check_filter(genre, genre_names, "genre")
        t = check_filter(theme, theme_names, "theme")
        pool = [p for p in prompts.values() if (g is None or p.genre == g) and (t is None or p.theme == t)]
        if not pool:
            raise ApiError(404, "no prompt matches those filters")
        return _prompt_out(rng.choice(pool))

    @app.get("/healthz", response_model=HealthOut)
    async def healthz() -> HealthOut:
        return HealthOut(status="ok")

    @app.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}})
    async def readyz():
        if not state["ready"] or not prompts:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return HealthOut(status="ready", prompts=len(prompts), model=retriever.fingerprint)

    web = static_dir()

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(web / "index.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        allowed = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in allowed:
            raise ApiError(404, "not found")
        return FileResponse(web / name, media_type=allowed[name])

    return app
