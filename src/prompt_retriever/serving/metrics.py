"""What the service did, in the Prometheus text format (`GET /metrics`): requests, errors and latency per
route template and status, searches and zero-result searches per run, and, with feedback on, the
events, the clicks, the click-through rate and the mean reciprocal rank of the first click per run.

Each app has a registry of its own (`ServiceMetrics`), never prometheus-client's global one, so several
apps in one process (tests, benchmarks) count apart. `RequestMetrics` is the plain-ASGI middleware that
times every request; the search and events routes report searches and events through
`observe_search` / `observe_event`. No label ever carries a path, a query or anything else the client
wrote: routes are the templates the app declares (`/api/prompts/{prompt_id}`), a path no route answers
is `unmatched`, an unusual method is `other`, and the run and action labels are capped in number.

A click is an open of a result (`CLICK_ACTIONS`), counted once per result of a search: the caller says
whether it is the first click on that result and the first on its search (`FeedbackRecorder.click`).
The click-through rate is the share of searches with at least one click, the mean reciprocal rank the
mean over those of 1/rank of the first result clicked; their raw counters (`searches_total`,
`clicked_searches_total`, `first_click_reciprocal_rank_total`) add up across servers, so a dashboard
computes them in PromQL, e.g. `sum(rate(..._clicked_searches_total[1h])) / sum(rate(..._searches_total[1h]))`.

>>> metrics = ServiceMetrics()
>>> metrics.observe_search("run-a", results=0)
>>> metrics.observe_event("run-a", "open", position=2)
>>> metrics.observe_event("run-a", "open", position=2, first_of_result=False, first_of_search=False)
>>> b'prompt_retriever_zero_result_searches_total{run="run-a"} 1.0' in metrics.exposition()
True
>>> metrics.click_through_rate("run-a"), metrics.mean_reciprocal_rank("run-a")
(1.0, 0.5)
"""

from __future__ import annotations

import threading

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector
from starlette.routing import Match

from .asgi import timed_call

PREFIX = "prompt_retriever"
# Seconds. A search answers in milliseconds; a run switch or a cold start takes seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of a path no route answers (never the path itself)
OTHER = "other"  # a method outside METHODS; a run or action past the label caps
# The actions that are a click on a result: the writer opened it. Copies, "use this prompt" and thumbs
# are counted per action (`feedback_events_total`) but are not clicks, so one result opened and then
# copied is one click.
CLICK_ACTIONS = frozenset({"open"})
MAX_RUNS = 64  # distinct run labels kept; later ones count under OTHER
MAX_ACTIONS = 32  # distinct action labels kept
MAX_LABEL_CHARS = 200


class _Labels:
    """At most `cap` distinct label values (each at most MAX_LABEL_CHARS); past the cap, OTHER."""

    def __init__(self, cap: int):
        self.cap, self.seen = cap, set[str]()

    def __call__(self, value: str) -> str:
        value = value[:MAX_LABEL_CHARS]
        if value in self.seen:
            return value
        if len(self.seen) >= self.cap:
            return OTHER
        self.seen.add(value)
        return value


class ServiceMetrics:
    """The metrics of one app, in a registry of its own (`registry`; `exposition()` is its text format).

    Per route template, method and status: `http_requests_total`, `http_request_errors_total` (status 400
    and up), `http_request_duration_seconds` (a histogram, per route and method). Per run (the served run's
    folder name, "" when not serving a run): `searches_total`, `zero_result_searches_total`,
    `feedback_events_total` (per action too, every event accepted), `clicks_total` (results clicked, each
    once per search), `clicked_searches_total` (searches with a click), `first_click_reciprocal_rank_total`
    (the sum over those of 1/rank of the first result clicked), and the ratios since start as gauges:
    `click_through_rate` (clicked searches per search) and `clicked_mrr` (that sum per clicked search)."""

    def __init__(self, *, process: bool = True):
        self.registry = CollectorRegistry()
        if process:
            ProcessCollector(registry=self.registry)  # CPU seconds, memory, open files of this process
        r, p = self.registry, PREFIX
        route = ("method", "route", "status")
        self.requests = Counter(f"{p}_http_requests", "HTTP requests answered", route, registry=r)
        self.errors = Counter(f"{p}_http_request_errors", "HTTP requests answered 400 or above", route, registry=r)
        self.latency = Histogram(
            f"{p}_http_request_duration_seconds",
            "Time from a request's arrival to its last byte sent",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.searches = Counter(f"{p}_searches", "Searches answered", ("run",), registry=r)
        self.zero_results = Counter(f"{p}_zero_result_searches", "Searches with no result", ("run",), registry=r)
        self.events = Counter(f"{p}_feedback_events", "Feedback events accepted", ("run", "action"), registry=r)
        clicked = f"Results clicked (actions: {', '.join(sorted(CLICK_ACTIONS))}), each once per search"
        self.clicks = Counter(f"{p}_clicks", clicked, ("run",), registry=r)
        self.clicked_searches = Counter(
            f"{p}_clicked_searches", "Searches with at least one result clicked", ("run",), registry=r
        )
        self.first_click_rr = Counter(
            f"{p}_first_click_reciprocal_rank",
            "Sum over the searches clicked of 1/rank of the first result clicked (1 is first)",
            ("run",),
            registry=r,
        )
        self.ctr = Gauge(
            f"{p}_click_through_rate", "Searches with a click per search answered, since start", ("run",), registry=r
        )
        self.mrr = Gauge(
            f"{p}_clicked_mrr",
            "Mean over the searches clicked of 1/rank of the first result clicked, since start",
            ("run",),
            registry=r,
        )
        self._runs, self._actions = _Labels(MAX_RUNS), _Labels(MAX_ACTIONS)
        self._lock = threading.Lock()
        # run -> [searches, searches clicked, sum of 1/rank of their first clicks]
        self._counts: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ requests
    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request answered: `route` is its template (`route_template`), `seconds` its duration."""
        method = method if method in METHODS else OTHER
        self.requests.labels(method, route, str(status)).inc()
        if status >= 400:
            self.errors.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    # ------------------------------------------------------------------ searches and feedback
    def observe_search(self, run: str, results: int) -> None:
        """A search answered by `run` with `results` results (0: a zero-result search)."""
        with self._lock:
            run = self._runs(run)
            counts = self._counts.setdefault(run, [0, 0, 0.0])
            counts[0] += 1
            self._update_rates(run, counts)
        self.searches.labels(run).inc()
        if results == 0:
            self.zero_results.labels(run).inc()

    def observe_event(
        self, run: str, action: str, position: int, *, first_of_result: bool = True, first_of_search: bool = True
    ) -> None:
        """A feedback event accepted for a result `run` answered at rank `position` (1 is the first):
        `action` (e.g. 'open', 'copy'). An action in CLICK_ACTIONS is a click, counted only if it is the
        first click on this result of the search (`first_of_result`); the first click on the search
        (`first_of_search`) makes it a clicked search and its 1/rank counts towards the MRR."""
        if position < 1:
            raise ValueError(f"position {position}: a rank of 1 or more expected")
        click = action in CLICK_ACTIONS
        with self._lock:
            run, action = self._runs(run), self._actions(action)
            if click and first_of_search:
                counts = self._counts.setdefault(run, [0, 0, 0.0])
                counts[1] += 1
                counts[2] += 1.0 / position
                self._update_rates(run, counts)
        self.events.labels(run, action).inc()
        if click and (first_of_result or first_of_search):
            self.clicks.labels(run).inc()
        if click and first_of_search:
            self.clicked_searches.labels(run).inc()
            self.first_click_rr.labels(run).inc(1.0 / position)

    def _update_rates(self, run: str, counts: list[float]) -> None:
        searches, clicked, rr = counts
        if searches:
            self.ctr.labels(run).set(clicked / searches)
        if clicked:
            self.mrr.labels(run).set(rr / clicked)

    def click_through_rate(self, run: str) -> float | None:
        """The share of `run`'s searches with at least one click (None before its first search)."""
        with self._lock:
            searches, clicked, _ = self._counts.get(run, (0, 0, 0.0))
        return clicked / searches if searches else None

    def mean_reciprocal_rank(self, run: str) -> float | None:
        """The mean over `run`'s clicked searches of 1/rank of the first result clicked (None before one)."""
        with self._lock:
            _, clicked, rr = self._counts.get(run, (0, 0, 0.0))
        return rr / clicked if clicked else None

    # ------------------------------------------------------------------ exposition
    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


def route_template(scope: dict) -> str:
    """The path template of the route that answers `scope` (as the router picks it: a full match, else
    the first route that answers the path with another method), or UNMATCHED."""
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", ())
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", UNMATCHED)
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "path", UNMATCHED)
    return partial or UNMATCHED


class RequestMetrics:
    """Counts and times every HTTP request into `metrics` (`ServiceMetrics.observe_request`), by route
    template, method and final status; a request that raised before answering counts as a 500. Plain
    ASGI, outermost among the app's middleware, so it sees what the client sees (413s and HEAD included)."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        def done(status: int, seconds: float) -> None:
            self.metrics.observe_request(str(scope.get("method", "")), route_template(scope), status, seconds)

        await timed_call(self.app, scope, receive, send, done)


def add_metrics(app: FastAPI, metrics: ServiceMetrics) -> None:
    """`GET /metrics` (`metrics` in the Prometheus text format) and the middleware that times requests;
    called after the app's other middleware, so it wraps them all."""
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
