"""`POST /api/events`: what a writer did with a search result, in UBI's event shape, on a server started
with `--feedback` (without it the route does not exist: a 404).

    POST /api/events   {"action_name": "open", "query_id": "...", "client_id": "...",
                        "event_attributes": {"object": {"object_id": "p-1"}, "position": {"ordinal": 1}}}

The body is a UBI 1.3.0 event (the fields this server takes, no others): `action_name` one of
`feedback.ACTIONS`, the `query_id` of a search this service answered, the page's random `client_id`, and
the prompt's id and 1-based rank in that answer. Refused with a JSON error: a body over `MAX_EVENT_BYTES`
(413), one that does not parse or validate (422), an unknown `query_id` or a prompt/rank that search did
not answer (422), more than the client address's share of events (429, `Retry-After`). The address is
used for that limit only, in memory, and never stored. An accepted event is queued for the store (the
answer does not wait for the write) and reported to the metrics: 202 `{"status": "queued"}`, or
`{"status": "dropped"}` when the queue is full. A repeated event (the same result opened twice) is
accepted and stored like any other, but the metrics count a click once per result of a search
(`FeedbackRecorder.click`). An event about a search whose record was dropped is refused as unknown.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Literal

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..corpus import ID_PATTERN
from ..feedback.records import ACTIONS, CLIENT_ID_PATTERN, QUERY_ID_PATTERN, EventRecord, now
from .metrics import CLICK_ACTIONS
from .middleware import ApiError
from .routes import MAX_K
from .schemas import ErrorOut

if TYPE_CHECKING:
    from ..feedback.recorder import FeedbackRecorder

MAX_EVENT_BYTES = 2048  # well above any valid event: its fields are capped
EVENTS_PER_SECOND = 50.0  # per client address: a writer makes a few a minute; one address may be many writers
EVENT_BURST = 200


class ObjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object_id: str = Field(pattern=ID_PATTERN.pattern, max_length=120, description="The prompt's id")
    object_id_field: Literal["id"] | None = Field(None, description="Always 'id' (a prompt's id)")


class PositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ordinal: int = Field(ge=1, le=MAX_K, description="The prompt's rank in the search's answer (1: the first)")


class EventAttributesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object: ObjectIn
    position: PositionIn


class EventIn(BaseModel):
    """A UBI event about one result of a search (the fields this server takes)."""

    model_config = ConfigDict(extra="forbid")

    action_name: Literal[ACTIONS] = Field(description="open, copy, use, thumbs_up or thumbs_down")  # type: ignore[valid-type]
    query_id: str = Field(pattern=QUERY_ID_PATTERN, description="The `query_id` of the search (GET /api/search)")
    client_id: str = Field(pattern=CLIENT_ID_PATTERN, description="The random id the page keeps")
    event_attributes: EventAttributesIn


class EventOut(BaseModel):
    status: Literal["queued", "dropped"]


QUEUED, DROPPED = b'{"status":"queued"}', b'{"status":"dropped"}'  # EventOut, encoded once


# The body's schema in the OpenAPI document (the route validates the body itself, `EventIn.model_validate_json`)
def inlined(schema: dict) -> dict:
    """`schema` with each `{"$ref": "#/$defs/NAME"}` replaced by that definition (no `$defs` left): the
    OpenAPI document has no place for a body schema's own definitions."""
    defs = schema.get("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        return [resolve(v) for v in node] if isinstance(node, list) else node

    return resolve(schema)


EVENT_BODY_DOC = {"content": {"application/json": {"schema": inlined(EventIn.model_json_schema())}}, "required": True}


class QueueCollector:
    """The feedback writer's counts for `/metrics` (a prometheus-client collector, read at each scrape):
    records offered, written, dropped (queue full) and failed (refused by the store), the queue's length
    and capacity."""

    def __init__(self, recorder: FeedbackRecorder):
        self.recorder = recorder

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s, p = self.recorder.stats(), "prompt_retriever_feedback_records"
        yield CounterMetricFamily(f"{p}_offered", "Feedback records (searches, events) queued or dropped", s.offered)
        yield CounterMetricFamily(f"{p}_written", "Feedback records written to the store", s.written)
        yield CounterMetricFamily(f"{p}_dropped", "Feedback records dropped: the queue was full", s.dropped)
        yield CounterMetricFamily(f"{p}_failed", "Feedback records lost: the store refused them", s.failed)
        yield GaugeMetricFamily(f"{p}_queued", "Feedback records waiting to be written", s.queued)
        yield GaugeMetricFamily(f"{p}_queue_capacity", "Feedback records the queue holds at most", s.capacity)


class RateLimiter:
    """A token bucket per client address (`rate` a second, up to `burst` at once: by default 4x the rate,
    at least `EVENT_BURST`), in memory only: the address is never written anywhere. At most `max_clients`
    addresses are tracked (the longest idle go)."""

    def __init__(self, rate: float = EVENTS_PER_SECOND, burst: int | None = None, max_clients: int = 10_000):
        burst = burst if burst is not None else max(EVENT_BURST, int(4 * rate))
        self.rate, self.burst, self.max_clients = rate, float(burst), max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, time)
        self._lock = threading.Lock()

    def wait_needed(self, address: str) -> float:
        """0 if `address` may send one more event now (and it is counted), else the seconds to wait."""
        t = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.pop(address, (self.burst, t))
            tokens = min(self.burst, tokens + (t - then) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[address] = (tokens - 1 if wait == 0 else tokens, t)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait


def add_event_routes(app: FastAPI, recorder: FeedbackRecorder | None, limiter: RateLimiter | None = None) -> None:
    """POST /api/events (see the module's docstring), only when `recorder` is given; the writer's counts
    (`QueueCollector`) join the app's metrics (`app.state.metrics`, on /metrics)."""
    if recorder is None:
        return
    limiter = limiter or RateLimiter()
    app.state.metrics.registry.register(QueueCollector(recorder))  # the drop counter, on /metrics

    refused_json = {413: f"event body over {MAX_EVENT_BYTES} bytes"}

    @app.post(
        "/api/events",
        response_model=EventOut,
        status_code=202,
        responses={413: {"model": ErrorOut}, 429: {"model": ErrorOut}, 503: {"model": ErrorOut}},
        openapi_extra={"requestBody": EVENT_BODY_DOC},
    )
    async def post_event(request: Request) -> Response:
        wait = limiter.wait_needed(request.client.host if request.client else "")
        if wait > 0:
            raise ApiError(429, "too many events from this address: slow down", {"Retry-After": str(math.ceil(wait))})
        raw = await request.body()
        if len(raw) > MAX_EVENT_BYTES:
            raise ApiError(413, refused_json[413])
        try:
            event = EventIn.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        query = recorder.recent(event.query_id)
        if query is None:  # answered by another server sharing the store, or before a restart
            try:
                query = await run_in_threadpool(recorder.store.query, event.query_id)
            except Exception:  # noqa: BLE001 - the store is down: the client may retry later
                raise ApiError(503, "the feedback store is unavailable", {"Retry-After": "5"}) from None
        if query is None:
            raise ApiError(422, f"unknown query_id {event.query_id}: no search with this id was answered here")
        object_id = event.event_attributes.object.object_id
        ordinal = event.event_attributes.position.ordinal
        rank = query.position_of(object_id)
        if rank is None:
            raise ApiError(422, f"prompt {object_id!r} is not among the results of query {event.query_id}")
        if rank != ordinal:
            raise ApiError(422, f"position {ordinal}: prompt {object_id!r} was answered at position {rank}")
        record = EventRecord(event.query_id, now(), event.client_id, event.action_name, object_id, rank, query.run)
        queued = recorder.record_event(record)
        first_of_result, first_of_search = (
            recorder.click(event.query_id, object_id) if event.action_name in CLICK_ACTIONS else (False, False)
        )
        app.state.metrics.observe_event(
            query.run, event.action_name, rank, first_of_result=first_of_result, first_of_search=first_of_search
        )
        return Response(QUEUED if queued else DROPPED, status_code=202, media_type="application/json")
