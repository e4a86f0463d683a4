"""The feedback log: what writers did with the prompts a search gave them, in the User Behavior Insights
(UBI 1.3.0) schema, kept in SQLite or PostgreSQL. Off unless a server is started with `--feedback`; see
docs/feedback.md and SECURITY.md for what is stored and for how long.

- `records`: `QueryRecord`, `EventRecord`, their UBI JSON forms, the action names, `parse_age`.
- `store`: `open_store(path or postgresql:// URL)` -> `FeedbackStore` (SQLAlchemy Core).
- `writer`: `BatchWriter`, a bounded queue written in batches by a background thread; drops with a count.
- `recorder`: `FeedbackRecorder`, the store + writer + recently answered searches, as a server uses them.
- `export`: `export_ubi(store, DIR)`, UBI JSON lines.
- `interleave`: `team_draft`, two rankings merged into one with a team per result.
- `experiments`: `ExperimentRecord` (a search's part in an experiment), click credit, `reports`.
- `clickmodel`: `estimate(queries, events)`, a position-based click model (EM) -> `ClickModelResult`.
- `judgments`: `store_judgments(store)` / `implicit_judgments` -> graded `JudgedQuery`s; `write_judged`.
- `owner`: `OwnerJudgments`, the owner's judged query set the judging page saves to; `frequent_queries`.

>>> recorder = FeedbackRecorder(open_store("feedback.db"))   # doctest: +SKIP
>>> export_ubi(recorder.store, Path("ubi"))                  # doctest: +SKIP
ExportCounts(queries=3, events=2)
"""

from __future__ import annotations

from .clickmodel import ClickModelConfig, ClickModelResult, PairEstimate, estimate
from .experiments import ExperimentRecord, ExperimentReport, reports
from .export import EVENTS_FILE, QUERIES_FILE, ExportCounts, export_ubi
from .interleave import Interleaving, team_draft
from .judgments import JudgedQuery, JudgmentsResult, implicit_judgments, store_judgments, write_judged
from .owner import LoggedQuery, OwnerJudgments, frequent_queries
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
    "ClickModelConfig",
    "ClickModelResult",
    "EventRecord",
    "ExperimentRecord",
    "ExperimentReport",
    "ExportCounts",
    "FeedbackRecorder",
    "FeedbackStore",
    "Interleaving",
    "JudgedQuery",
    "JudgmentsResult",
    "LoggedQuery",
    "OwnerJudgments",
    "PairEstimate",
    "QueryRecord",
    "WriterStats",
    "estimate",
    "export_ubi",
    "frequent_queries",
    "implicit_judgments",
    "open_store",
    "parse_age",
    "reports",
    "shown",
    "store_judgments",
    "team_draft",
    "write_judged",
]
