"""What the feedback log keeps: one `QueryRecord` per search answered and one `EventRecord` per thing a
writer did with a result, and their UBI (User Behavior Insights 1.3.0) JSON forms.

Field names are UBI's: a query has `query_id`, `client_id`, `user_query`, `timestamp` and the ids of the
prompts answered, in rank order (`query_response_object_ids`, the name of OpenSearch's `ubi_queries` index,
and `query_response_hit_ids`, the name of the 1.3.0 query schema); an event has `action_name`, `query_id`,
`client_id`, `timestamp` and `event_attributes.object.object_id` / `event_attributes.position.ordinal`.
No address, user agent or other trait of the client is part of either: `client_id` is a random id the
page made up.

>>> q = QueryRecord("4f0c...", utc(2026, 12, 7), None, "haunted lighthouse", ("p-1", "p-2"), 10)
>>> ubi_query(q)["query_response_object_ids"]
['p-1', 'p-2']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

APPLICATION = "prompt-retriever"
OBJECT_ID_FIELD = "id"  # a prompt's `id` is the object_id of UBI
# What the page reports about a result. UBI's own common names (`click`, `view`, ...) are not used: the 1.3.0
# event schema makes them fail strict validation (its `action_name` is `oneOf` a list of them and any
# string, and a listed name matches both), and a writer does more than click here.
ACTIONS = ("open", "copy", "use", "thumbs_up", "thumbs_down")
# message_type groups actions into bins (UBI's own example values are QUERY and CONVERSION).
MESSAGE_TYPES = {
    "open": "CLICK",
    "copy": "CONVERSION",
    "use": "CONVERSION",
    "thumbs_up": "RATING",
    "thumbs_down": "RATING",
}
CLIENT_ID_PATTERN = r"^[A-Za-z0-9_-]{8,100}$"
QUERY_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def query_key(text: str) -> str:
    """What makes two spellings of one query the same query (searches grouped, judged lines merged):
    case and runs of white space ignored.

    >>> query_key("  Haunted   LIGHTHOUSE ")
    'haunted lighthouse'
    """
    return " ".join(text.split()).casefold()


def utc(*args: int) -> datetime:
    """`datetime(*args)` in UTC."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(t: datetime) -> datetime:
    """`t` with its timezone; a naive time (SQLite keeps no zone) is UTC, as every time written here is."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def iso(t: datetime) -> str:
    """ISO 8601 in UTC with a trailing `Z` (OpenSearch requires a zone), to the millisecond."""
    return as_utc(t).strftime("%Y-%m-%dT%H:%M:%S.") + f"{as_utc(t).microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class QueryRecord:
    """One search answered: its id, when, by which client (None: the page had no id yet), the query as
    typed, the prompt ids answered in rank order, and how (k, filters, the run and system serving)."""

    query_id: str
    timestamp: datetime
    client_id: str | None
    user_query: str
    object_ids: tuple[str, ...]
    k: int
    genre: str | None = None
    theme: str | None = None
    run: str = ""
    system: str = ""

    def position_of(self, object_id: str) -> int | None:
        """The 1-based rank at which `object_id` was answered, None if it was not."""
        try:
            return self.object_ids.index(object_id) + 1
        except ValueError:
            return None


@dataclass(frozen=True)
class EventRecord:
    """One action on one result of a search: `action_name` (one of `ACTIONS`) on prompt `object_id` shown
    at `position` (1-based) in the answer to `query_id`."""

    query_id: str
    timestamp: datetime
    client_id: str
    action_name: str
    object_id: str
    position: int
    run: str = field(default="", compare=False)  # the query's, for metrics; not stored with the event


def ubi_query(q: QueryRecord, client_id: str | None = None) -> dict:
    """`q` as a UBI query (query.request.schema.json 1.3.0); `client_id` fills in one the query lacked
    (the page makes its id on the first answer that takes events, after that search was sent)."""
    out: dict = {"application": APPLICATION, "query_id": q.query_id}
    if q.client_id or client_id:
        out["client_id"] = q.client_id or client_id
    attributes = {"k": q.k, "genre": q.genre, "theme": q.theme, "run": q.run, "system": q.system}
    out |= {
        "user_query": q.user_query,
        "timestamp": iso(q.timestamp),
        "object_id_field": OBJECT_ID_FIELD,
        "query_response_object_ids": list(q.object_ids),
        "query_response_hit_ids": list(q.object_ids),
        "query_attributes": {k: v for k, v in attributes.items() if v not in (None, "")},
    }
    return out


def ubi_event(e: EventRecord) -> dict:
    """`e` as a UBI event (event.schema.json 1.3.0)."""
    return {
        "application": APPLICATION,
        "action_name": e.action_name,
        "query_id": e.query_id,
        "client_id": e.client_id,
        "timestamp": iso(e.timestamp),
        "message_type": MESSAGE_TYPES.get(e.action_name, "OTHER"),
        "event_attributes": {
            "object": {"object_id": e.object_id, "object_id_field": OBJECT_ID_FIELD},
            "position": {"ordinal": e.position},
        },
    }


_AGE = re.compile(r"^\s*(\d{1,6})\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(text: str) -> timedelta:
    """`90d`, `12h`, `30m` as a timedelta; ValueError naming the accepted forms otherwise."""
    m = _AGE.match(text or "")
    if not m:
        raise ValueError(f"{text!r} is not an age: use a number and d (days), h (hours) or m (minutes), e.g. 90d")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
