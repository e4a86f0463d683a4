"""The feedback log: what writers did with the prompts a search gave them, in the User Behavior Insights
(UBI 1.3.0) schema, kept in SQLite or PostgreSQL. Off unless a server is started with `--feedback`; see
docs/feedback.md and SECURITY.md for what is stored and for how long.

- `records`: `QueryRecord`, `EventRecord`, their UBI JSON forms, the action names, `parse_age`.
- `store`: `open_store(path or postgresql:// URL)` -> `FeedbackStore` (SQLAlchemy Core).
- `writer`: `BatchWriter`, a bounded queue written in batches by a background thread; drops with a count.
- `recorder`: `FeedbackRecorder`, the store + writer + recently answered searches, as a server uses them.
- `export`: `export_ubi(store, DIR)`, UBI JSON lines.

>>> recorder = FeedbackRecorder(open_store("feedback.db"))   # doctest: +SKIP
>>> export_ubi(recorder.store, Path("ubi"))                  # doctest: +SKIP
ExportCounts(queries=3, events=2)
"""

from __future__ import annotations

from .export import EVENTS_FILE, QUERIES_FILE, ExportCounts, export_ubi
from .recorder import FeedbackRecorder
from .records import ACTIONS, CLIENT_ID_PATTERN, QUERY_ID_PATTERN, EventRecord, QueryRecord, parse_age
from .store import FeedbackStore, open_store, shown
from .writer import BatchWriter, WriterStats

__all__ = [
    "ACTIONS",
    "CLIENT_ID_PATTERN",
    "EVENTS_FILE",
    "QUERIES_FILE",
    "QUERY_ID_PATTERN",
    "BatchWriter",
    "EventRecord",
    "ExportCounts",
    "FeedbackRecorder",
    "FeedbackStore",
    "QueryRecord",
    "WriterStats",
    "export_ubi",
    "open_store",
    "parse_age",
    "shown",
]
