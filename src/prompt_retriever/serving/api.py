"""HTTP API and web page over a `PromptRetriever` (FastAPI): `create_app` puts the parts together, the
response shapes (`schemas`), the batcher (`batcher`), middleware and error handlers (`middleware`), the
state the handlers read (`state`) and the routes (`routes`). Handlers stay thin over the library.

    GET /api/search?q=&k=&genre=&theme=   ranked prompts
    GET /api/prompts/{id}                 one prompt
    GET /api/facets                       genres and themes with counts
    GET /api/random?genre=&theme=         a random prompt ("surprise me")
    GET /api/info                         which system answers, and the numbers it was chosen on
    GET /healthz, /readyz                 liveness, readiness (index loaded)
    GET /metrics                          requests, latency, searches, clicks (Prometheus text; `metrics`)
    GET /                                 the web page (static files, no CDN, works offline)
    GET /docs                             the API reference, rendered from /openapi.json (offline)
    PUT, DELETE /api/prompts/{id}         add/update, remove a prompt   } only with an admin token
    POST /api/admin/reload                switch to another run         } (`admin`)
    POST /api/events                      what a writer did with a result (only with --feedback; `events`)
    GET /api/experiments                  the experiments' reports (only with --feedback; `experiment`)
    GET /judge, /api/judge/*, POST /api/judgments   the owner rates results (admin token and --judgments; `judging`)

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

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastapi import FastAPI

from .._version import __version__
from ..errors import InputError
from ..search.retriever import PromptRetriever
from .admin import add_admin_routes
from .batcher import QueryBatcher
from .events import RateLimiter, add_event_routes
from .experiment import Experiment, add_experiment_routes
from .judging import add_judging_routes
from .live import LiveState, Loader
from .metrics import ServiceMetrics, add_metrics
from .middleware import (
    SECURITY_HEADERS,
    AccessLog,
    ApiError,
    HeadAsGet,
    SecurityHeaders,
    add_error_handlers,
    add_middleware,
    log,
    log_safe,
)
from .routes import ID_PATTERN, MAX_K, MAX_QUERY_CHARS, add_health_routes, add_page_routes, add_search_routes
from .schemas import ErrorOut, FacetsOut, HealthOut, HitOut, InfoOut, PromptOut, SearchOut
from .state import ServingState

if TYPE_CHECKING:
    from ..feedback.explore import Explorer
    from ..feedback.owner import OwnerJudgments
    from ..feedback.recorder import FeedbackRecorder

__all__ = [
    "ID_PATTERN",
    "MAX_K",
    "MAX_QUERY_CHARS",
    "SECURITY_HEADERS",
    "AccessLog",
    "ApiError",
    "ErrorOut",
    "FacetsOut",
    "HeadAsGet",
    "HealthOut",
    "HitOut",
    "InfoOut",
    "LiveState",
    "PromptOut",
    "QueryBatcher",
    "SearchOut",
    "SecurityHeaders",
    "ServingState",
    "create_app",
    "log",
    "log_safe",
]


def create_app(
    retriever: PromptRetriever,
    *,
    log_queries: bool = False,
    cors_origins: Sequence[str] = (),
    max_batch: int = 32,
    batch_workers: int = 1,
    admin_token: str | None = None,
    loader: Loader | None = None,
    feedback: FeedbackRecorder | None = None,
    feedback_rate: float | None = None,
    experiment: Experiment | None = None,
    judgments: OwnerJudgments | None = None,
    explorer: Explorer | None = None,
) -> FastAPI:
    """The app serving `retriever`: searches batched `max_batch` at a time by `batch_workers` threads, the
    access log (queries in it only with `log_queries`), CORS for `cors_origins` only. With `admin_token`,
    the write and reload routes (`admin`); `loader` builds the retriever of a run to switch to (None: the
    one served at start, again). `app.state.live` is the `LiveState` the routes read. With `feedback`,
    searches are recorded and POST /api/events takes events (`events`), at most `feedback_rate` a second
    per client address (None: `events.EVENTS_PER_SECOND`); its owner closes it. With `judgments` (which
    needs `admin_token`), the owner's judging page saves to it (`judging`). With `experiment` (which needs
    `feedback`), searches are answered and recorded as it says (`experiment`). With `explorer` (which needs
    `feedback`), a share of the searches outside an experiment are answered with one adjacent pair of
    results swapped (`feedback.explore`), so the log shows prompts at neighbouring ranks."""
    if explorer is not None and feedback is None:
        raise InputError("exploring searches needs feedback on: the swaps are only worth it when the log keeps them")
    if judgments is not None and admin_token is None:
        raise InputError("the judging page is the owner's: it needs an admin token (PROMPT_RETRIEVER_ADMIN_TOKEN)")
    app = FastAPI(
        title="prompt-retriever",
        version=__version__,
        docs_url=None,  # FastAPI's Swagger UI and ReDoc load from a CDN: /docs is served locally instead
        redirect_slashes=False,  # Starlette's redirect is absolute, built from the Host header: see slash_redirect
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
        description="Search creative-writing prompts.",
        responses={code: {"model": ErrorOut} for code in (400, 404, 422, 500)},
    )
    live = app.state.live = LiveState(retriever, loader=loader)
    app.state.feedback = feedback  # None: feedback off (no events route, nothing recorded)
    app.state.metrics = ServiceMetrics()  # this app's own registry: GET /metrics
    app.state.batcher = QueryBatcher(live.search_batch, max_batch=max_batch, workers=batch_workers)
    add_middleware(app, log_queries=log_queries, cors_origins=cors_origins)
    add_error_handlers(app)
    add_search_routes(app, live, app.state.batcher)
    add_health_routes(app, live)
    add_admin_routes(app, live, admin_token)
    add_event_routes(app, feedback, RateLimiter(feedback_rate) if feedback_rate else None)
    app.state.experiment = experiment  # None: every search answered by the run served (`routes`)
    app.state.explorer = explorer  # None: answers in the order the system ranked them (`routes`)
    add_experiment_routes(app, live, feedback, experiment)  # an experiment without feedback: InputError
    add_judging_routes(app, live, admin_token, judgments)  # before the page routes: /static/judge.js first
    add_page_routes(app)
    add_metrics(app, app.state.metrics)  # last: its middleware wraps all the others
    return app
