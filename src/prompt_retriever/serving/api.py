"""HTTP API and web page over a `PromptRetriever` (FastAPI). Handlers stay thin over the library.

    GET /api/search?q=&k=&genre=&theme=   ranked prompts
    GET /api/prompts/{id}                 one prompt
    GET /api/facets                       genres and themes with counts
    GET /api/random?genre=&theme=         a random prompt ("surprise me")
    GET /api/info                         which system answers, and the numbers it was chosen on
    GET /healthz, /readyz                 liveness, readiness (index loaded)
    GET /                                 the web page (static files, no CDN, works offline)
    GET /docs                             the API reference, rendered from /openapi.json (offline)

HEAD works on every GET route. Every error is JSON `{"error": ...}`: client mistakes a 4xx naming the
problem, a 405 with `Allow`, a crash a bare 500; concurrent searches are encoded and searched together
in batches off the event loop (`QueryBatcher`); the request log escapes control characters and carries
no query text unless `log_queries` is on; CORS is off unless origins are given. Every response carries
a Content-Security-Policy (scripts, styles and requests from this origin only, no framing),
`X-Content-Type-Options: nosniff` and `X-Frame-Options: DENY`; a trailing-slash redirect is relative
(`/docs/` -> `/docs`), never built from the client's Host header. Limits below HTTP (connections,
header timeout and size, pipelining) are `guard.py`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi import Path as FastPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ..corpus import QUERY_PATTERN, Prompt
from ..search.retriever import PromptRetriever, SearchRequest

log = logging.getLogger("prompt_retriever.api")
MAX_QUERY_CHARS = 512
MAX_K = 100
# The corpus's id rule (`corpus.id_problem`): ids of CSV/JSONL corpora may have capitals, '.' and '_'.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
# The page and /docs load their scripts and styles from /static and fetch from this origin only: nothing
# inline, nothing from elsewhere, and no other site may frame them (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_UNSAFE_IN_LOG = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")
_LOG_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def log_safe(text: str) -> str:
    """`text` with control characters (C0, DEL, C1, Unicode line separators) and backslashes escaped,
    so that nothing a client sends (e.g. `%0a` in a path) can start a forged line in the log."""

    def esc(m: re.Match) -> str:
        ch = m.group()
        return _LOG_ESCAPES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")

    return _UNSAFE_IN_LOG.sub(esc, text)


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


class InfoOut(BaseModel):
    """Which system answers, and the numbers it was chosen on (null when not served from a run)."""

    model_config = ConfigDict(populate_by_name=True)

    system: str = Field(description="A human name, e.g. 'fine-tuned all-MiniLM-L6-v2 + BM25 hybrid'")
    kind: str = Field(description="dense | bm25 | hybrid | hybrid-rrf")
    model: str | None
    backend: str | None
    prompts: int
    corpus_fingerprint: str
    dev_ndcg10: float | None = Field(None, alias="dev_ndcg@10")
    test_ndcg10: float | None = Field(None, alias="test_ndcg@10")


class HealthOut(BaseModel):
    status: str
    prompts: int | None = None
    model: str | None = None


def _below_event_loop() -> None:
    """Batch threads run at a lower CPU priority than the event loop, so with every core busy encoding,
    the loop still parses requests and sends answers on time (Linux: a per-thread nice value)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: plain priority
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + 5))


class QueryBatcher:
    """Runs concurrent requests together, off the event loop.

    One worker takes the first waiting request, gathers whatever else arrives within `max_wait` seconds
    (up to `max_batch`), and hands them to `run(items) -> results` in one call in a thread. Idle, a
    request waits `max_wait` at most; under load batches grow on their own. `workers` batches run at
    once (one per core when each uses one inference thread), never one thread per request.
    """

    def __init__(self, run, max_batch: int = 32, max_wait: float = 0.002, workers: int = 1):
        self.run_fn, self.max_batch, self.max_wait = run, max_batch, max_wait
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="batch", initializer=_below_event_loop)
        self._workers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> (queue, tasks)
        self.batches = 0

    async def submit(self, item):
        loop = asyncio.get_running_loop()
        entry = self._workers.get(loop)
        if entry is None or any(t.done() for t in entry[1]):  # one queue and worker pool per event loop
            queue: asyncio.Queue = asyncio.Queue()
            entry = (queue, [loop.create_task(self._run(queue)) for _ in range(self.workers)])
            self._workers[loop] = entry
        fut = loop.create_future()
        await entry[0].put((item, fut))
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
                results = await loop.run_in_executor(self._pool, self.run_fn, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch of {len(batch)} requests got {len(results)} results")
            except Exception as exc:  # every waiting request gets the error, the worker lives on
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)


class AccessLog:
    """One log line per request: method, path, status, time. The query string (the user's search) is
    left out unless `log_queries` is on. Plain ASGI, so it adds no task or stream per request."""

    def __init__(self, app, log_queries: bool = False):
        self.app, self.log_queries = app, log_queries

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = scope.get("path", "")
            if self.log_queries and scope.get("query_string"):
                path = f"{path}?{scope['query_string'].decode('latin-1')}"
            ms = (time.perf_counter() - t0) * 1000
            log.info("%s %s %d %.1fms", log_safe(str(scope.get("method"))), log_safe(path), status[0], ms)


class HeadAsGet:
    """HEAD on any GET route: the GET handler runs, its headers (Content-Length included) are sent and
    its body is dropped. FastAPI routes answer only the methods they name, so HEAD used to get a 405."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message):
            if message["type"] == "http.response.body":
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class SecurityHeaders:
    """`SECURITY_HEADERS` on every HTTP response (the page, static files, the API, errors). Plain ASGI."""

    def __init__(self, app):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def static_dir() -> Path:
    return Path(str(resources.files("prompt_retriever.serving") / "web"))


class ServingState:
    """What the handlers read: the retriever, its prompts by id, genre/theme counts, and each prompt's
    response part (built once: prompts never change while serving). Ready means prompts are loaded."""

    def __init__(self, retriever: PromptRetriever):
        self.retriever = retriever
        self.prompts = {p.id: p for p in retriever.prompts}
        self.genres = Counter(p.genre for p in retriever.prompts)
        self.themes = Counter(p.theme for p in retriever.prompts)
        self._names = {
            "genre": {g.casefold(): g for g in self.genres},
            "theme": {t.casefold(): t for t in self.themes},
        }
        self._outs: dict[str, PromptOut] = {}
        self.info = InfoOut(**retriever.describe())
        self._rng = random.Random()

    @property
    def ready(self) -> bool:
        return bool(self.prompts)

    def prompt_out(self, p: Prompt) -> PromptOut:
        out = self._outs.get(p.id)
        if out is None:
            out = self._outs[p.id] = PromptOut(
                id=p.id, genre=p.genre, theme=p.theme, title=p.title, text=p.text, kind=p.kind
            )
        return out

    def check_filter(self, value: str | None, what: str) -> str | None:
        """The canonical genre/theme for a case-insensitive filter value; None for no filter."""
        if value is None or not value.strip():
            return None
        names = self._names[what]
        if value.strip().casefold() not in names:
            raise ApiError(400, f"unknown {what} {value.strip()!r}; see /api/facets")
        return names[value.strip().casefold()]

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


def create_app(
    retriever: PromptRetriever,
    *,
    log_queries: bool = False,
    cors_origins: Sequence[str] = (),
    max_batch: int = 32,
    batch_workers: int = 1,
) -> FastAPI:
    app = FastAPI(
        title="prompt-retriever",
        version="1",
        docs_url=None,  # FastAPI's Swagger UI and ReDoc load from a CDN: /docs is served locally instead
        redirect_slashes=False,  # Starlette's redirect is absolute, built from the Host header: see slash_redirect
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
        description="Search creative-writing prompts.",
        responses={code: {"model": ErrorOut} for code in (400, 404, 422, 500)},
    )
    state = ServingState(retriever)
    app.state.batcher = QueryBatcher(retriever.search_requests, max_batch=max_batch, workers=batch_workers)
    add_middleware(app, log_queries=log_queries, cors_origins=cors_origins)
    add_error_handlers(app)
    add_search_routes(app, state, app.state.batcher)
    add_health_routes(app, state)
    add_page_routes(app)
    return app


def add_middleware(app: FastAPI, *, log_queries: bool = False, cors_origins: Sequence[str] = ()) -> None:
    """HEAD as GET, the access log (outside it, so HEAD is logged as HEAD), CORS for `cors_origins`
    only (off when empty), and the security headers outside all of them."""
    app.add_middleware(HeadAsGet)
    app.add_middleware(AccessLog, log_queries=log_queries)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET"])
    app.add_middleware(SecurityHeaders)


def add_error_handlers(app: FastAPI) -> None:
    """Every error answers `{"error": ...}` (validation errors also with `detail`); a 405 names the
    allowed methods in `Allow`; a 404 for a route plus a trailing slash is a relative redirect to the
    route (`slash_redirect`); an unexpected exception is a bare 500 (logged, not shown)."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_body(exc.errors()), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse | RedirectResponse:
        if exc.status_code == 404 and (location := slash_redirect(request)) is not None:
            return RedirectResponse(location, status_code=307)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = [m.strip() for m in headers.get("Allow", "GET").split(",") if m.strip()]
            if "GET" in allowed and "HEAD" not in allowed:
                allowed.append("HEAD")  # HeadAsGet answers it
            headers["Allow"] = ", ".join(allowed)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        # answered by Starlette's outermost middleware, past SecurityHeaders: the headers go on here
        return JSONResponse({"error": "internal server error"}, status_code=500, headers=SECURITY_HEADERS)


def slash_redirect(request: Request) -> str | None:
    """For a path that is a route plus one trailing slash (`/docs/`), the route's path and the query as a
    relative URL (`/docs`), else None. Starlette's own redirect is absolute and built from the Host
    header (`Host: evil.example` gave `location: http://evil.example/...`); this one names no host, and
    a path starting `//` (which a browser would read as another host) never redirects."""
    scope = request.scope
    path = scope.get("path", "")
    if len(path) < 2 or not path.endswith("/") or path.startswith("//"):
        return None
    target = {**scope, "path": path[:-1]}
    if not any(route.matches(target)[0] != Match.NONE for route in request.app.router.routes):
        return None
    raw = scope.get("raw_path") or path.encode()
    location = (raw[:-1] if raw.endswith(b"/") else raw).decode("latin-1")
    if location.startswith("//") or not location.startswith("/"):
        return None
    query = scope.get("query_string", b"").decode("latin-1")
    return location + ("?" + query if query else "")


def validation_body(errors: Sequence[dict]) -> dict:
    """One readable message for pydantic's validation errors, e.g. "k: Input should be ..."."""
    parts = []
    for e in errors:
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path"))
        if where == "q" and e.get("type") in ("string_too_short", "string_pattern_mismatch"):
            parts.append("empty query: q must contain some text")
        else:
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors]
    return {"error": "; ".join(parts) or "invalid request", "detail": detail}


def filter_doc(what: str, names: Counter) -> dict:
    """OpenAPI description of a genre/theme filter, listing the values the index has."""
    return {"description": f"Only this {what} (case-insensitive)", "json_schema_extra": {"enum": sorted(names)}}


def add_search_routes(app: FastAPI, state: ServingState, batcher: QueryBatcher) -> None:
    """/api/search (batched by `batcher`), /api/prompts/{id}, /api/facets, /api/random."""
    genre_doc = filter_doc("genre", state.genres)
    theme_doc = filter_doc("theme", state.themes)

    @app.get("/api/search", response_model=SearchOut)
    async def search(
        q: str = Query(
            ...,
            description="What you feel like writing about",
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            pattern=QUERY_PATTERN,  # one rule for every entry point (corpus.query_problem)
        ),
        k: int = Query(10, ge=1, le=MAX_K),
        genre: str | None = Query(None, max_length=200, **genre_doc),
        theme: str | None = Query(None, max_length=200, **theme_doc),
    ) -> SearchOut:
        g, t = state.filters(genre, theme)
        t0 = time.perf_counter()
        hits = await batcher.submit(SearchRequest(q.strip(), k, g, t))
        return SearchOut(
            query=q.strip(),
            k=k,
            genre=g,
            theme=t,
            took_ms=round((time.perf_counter() - t0) * 1000, 2),
            results=[HitOut(rank=h.rank, score=round(h.score, 6), prompt=state.prompt_out(h.prompt)) for h in hits],
        )

    @app.get("/api/prompts/{prompt_id}", response_model=PromptOut)
    async def get_prompt(
        prompt_id: str = FastPath(
            ..., pattern=ID_PATTERN.pattern, description="1-120 letters, digits, '.', '_', '-'; starts alphanumeric"
        ),
    ) -> PromptOut:
        return state.prompt_out(state.prompt(prompt_id))

    @app.get("/api/facets", response_model=FacetsOut)
    async def facets() -> FacetsOut:
        return state.facets()

    @app.get("/api/random", response_model=PromptOut)
    async def random_prompt(
        genre: str | None = Query(None, max_length=200, **genre_doc),
        theme: str | None = Query(None, max_length=200, **theme_doc),
    ) -> PromptOut:
        return state.prompt_out(state.random_prompt(*state.filters(genre, theme)))


def add_health_routes(app: FastAPI, state: ServingState) -> None:
    """/api/info (which system answers), /healthz (the process answers), /readyz (prompts loaded)."""

    @app.get("/api/info", response_model=InfoOut, response_model_by_alias=True)
    async def info() -> InfoOut:
        return state.info

    @app.get("/healthz", response_model=HealthOut)
    async def healthz() -> HealthOut:
        return HealthOut(status="ok")

    @app.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}})
    async def readyz():
        if not state.ready:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return HealthOut(status="ready", prompts=len(state.prompts), model=state.retriever.fingerprint)


def add_page_routes(app: FastAPI) -> None:
    """The web page at /, the API reference at /docs, and their static files; nothing else under /static."""
    web = static_dir()

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(web / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(web / "docs.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        allowed = {
            "app.js": "text/javascript",
            "style.css": "text/css",
            "docs.js": "text/javascript",
            "docs.css": "text/css",
        }
        if name not in allowed:
            raise ApiError(404, "not found")
        return FileResponse(web / name, media_type=allowed[name])
