"""The API's routes, registered on an app over a `LiveState`: each handler takes the current
`ServingState` once (a request finishes on the state it started on, even if a write or a switch replaces
it meanwhile), checks its input and calls the state or the library, nothing more. The search route goes
through the `QueryBatcher`.

    GET /api/search?q=&k=&genre=&theme=   ranked prompts
    GET /api/prompts/{id}                 one prompt
    GET /api/facets                       genres and themes with counts
    GET /api/random?genre=&theme=         a random prompt ("surprise me")
    GET /api/info                         which system answers, and the numbers it was chosen on
    GET /healthz, /readyz                 liveness, readiness (index loaded)
    GET /                                 the web page (static files, no CDN, works offline)
    GET /docs                             the API reference, rendered from /openapi.json (offline)
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Header, Query
from fastapi import Path as FastPath
from fastapi.responses import FileResponse, JSONResponse

from ..corpus import ID_PATTERN, QUERY_PATTERN  # one rule for ids and queries at every entry point
from ..errors import PromptRetrieverError
from ..feedback.records import CLIENT_ID_PATTERN, QueryRecord, now
from ..search.retriever import SearchRequest
from ..search.versions import read_current
from .batcher import QueryBatcher
from .experiment import answer_search
from .live import LiveState
from .middleware import ApiError
from .schemas import FacetsOut, HealthOut, InfoOut, PromptOut, SearchOut

MAX_QUERY_CHARS = 512
CLIENT_ID = re.compile(CLIENT_ID_PATTERN)
MAX_K = 100


def static_dir() -> Path:
    return Path(str(resources.files("prompt_retriever.serving") / "web"))


def filter_doc(what: str, names: Counter) -> dict:
    """OpenAPI description of a genre/theme filter, listing the values the index has."""
    return {"description": f"Only this {what} (case-insensitive)", "json_schema_extra": {"enum": sorted(names)}}


def add_search_routes(app: FastAPI, live: LiveState, batcher: QueryBatcher) -> None:
    """/api/search (batched by `batcher`, which runs `LiveState.search_batch`), /api/prompts/{id},
    /api/facets, /api/random. The filters' documented values are those served at start. Every search
    gets a `query_id`; it is reported to `app.state.metrics` and, with feedback on, recorded by
    `app.state.feedback` (a `FeedbackRecorder`: queued, never waited for). With `app.state.experiment`
    (an `experiment.Experiment`), it answers searches as the experiment says, and records their part in it;
    with `app.state.explorer`, the others are explored (`experiment.answer_search`)."""
    genre_doc = filter_doc("genre", live.state.genres)
    theme_doc = filter_doc("theme", live.state.themes)

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
        client_id: str | None = Header(
            None,
            alias="X-Client-Id",
            description="With feedback on: the random id the page keeps (UBI `client_id`: 8-100 letters, digits, "
            "'_', '-'), stored with the search; any other value is ignored (a search never fails over it)",
        ),
    ) -> SearchOut:
        state = live.state
        g, t = state.filters(genre, theme)
        t0 = time.perf_counter()
        request = SearchRequest(q.strip(), k, g, t)
        answered = await answer_search(app.state.experiment, batcher, state, request, app.state.explorer)
        hits = answered.hits
        took_ms = round((time.perf_counter() - t0) * 1000, 2)
        query_id = str(uuid.uuid4())
        run = answered.run
        app.state.metrics.observe_search(run, len(hits))
        if (feedback := app.state.feedback) is not None:
            ids = tuple(h.prompt.id for h in hits)
            client_id = client_id if client_id and CLIENT_ID.fullmatch(client_id) else None
            system, at = answered.system, now()
            recorded = feedback.record_query(QueryRecord(query_id, at, client_id, q.strip(), ids, k, g, t, run, system))
            if recorded and (part := answered.experiment_record(query_id, at)) is not None:
                feedback.record_experiment(part)  # its part in the experiment, right behind it on the queue
        on = True if feedback is not None else None  # the page reports events only when told so
        return SearchOut.build(
            q, k, g, t, took_ms, hits, prompt_out=answered.prompt_out, query_id=query_id, feedback=on
        )

    @app.get("/api/prompts/{prompt_id}", response_model=PromptOut)
    async def get_prompt(
        prompt_id: str = FastPath(
            ..., pattern=ID_PATTERN.pattern, description="1-120 letters, digits, '.', '_', '-'; starts alphanumeric"
        ),
    ) -> PromptOut:
        state = live.state
        return state.prompt_out(state.prompt(prompt_id))

    @app.get("/api/facets", response_model=FacetsOut)
    async def facets() -> FacetsOut:
        return live.state.facets()

    @app.get("/api/random", response_model=PromptOut)
    async def random_prompt(
        genre: str | None = Query(None, max_length=200, **genre_doc),
        theme: str | None = Query(None, max_length=200, **theme_doc),
    ) -> PromptOut:
        state = live.state
        return state.prompt_out(state.random_prompt(*state.filters(genre, theme)))


def current_run(live: LiveState) -> str | None:
    """The run that the runs folder of the run served names current now (its current.json): None when
    not serving a run, or that folder has no current run or its current.json cannot be read."""
    run_dir = live.state.retriever.__dict__.get("run_dir")
    if run_dir is None:
        return None
    try:
        current = read_current(Path(run_dir).resolve().parent)
    except (PromptRetrieverError, OSError, RuntimeError):
        return None
    return current.run if current is not None else None


class CurrentRunCollector:
    """`prompt_retriever_run_served_is_current` for `/metrics`, read at each scrape: 1 while the run served
    is its runs folder's current run, 0 while that folder names another (a switch pending or failing:
    `serve --runs` retries it), no sample when not serving a run of a folder with a current run."""

    def __init__(self, live: LiveState):
        self.live = live

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        gauge = GaugeMetricFamily(
            "prompt_retriever_run_served_is_current",
            "1 if the run served is the current run of its runs folder, 0 if that folder names another",
        )
        current = current_run(self.live)
        if current is not None:
            gauge.add_metric([], 1.0 if current == self.live.state.run_name else 0.0)
        yield gauge


def add_health_routes(app: FastAPI, live: LiveState) -> None:
    """/api/info (which system answers, and the current run of its runs folder), /healthz (the process
    answers), /readyz (prompts loaded); `CurrentRunCollector` joins the app's metrics."""
    app.state.metrics.registry.register(CurrentRunCollector(live))

    @app.get("/api/info", response_model=InfoOut, response_model_by_alias=True)
    async def info() -> InfoOut:
        feedback = True if app.state.feedback is not None else None  # as a search answer says it
        return live.state.info.model_copy(update={"current_run": current_run(live), "feedback": feedback})

    @app.get("/healthz", response_model=HealthOut)
    async def healthz() -> HealthOut:
        return HealthOut(status="ok")

    @app.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}})
    async def readyz():
        state = live.state
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
