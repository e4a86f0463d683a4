"""The feedback store: two tables, `ubi_queries` and `ubi_events` (and `experiment_queries`, which searches
were part of an experiment: `feedback.experiments`), over SQLAlchemy Core, in SQLite (one file,
write-ahead log: the embedded default) or PostgreSQL (psycopg 3), so several servers behind a load balancer
can share one log.

>>> store = open_store("feedback.db")                     # doctest: +SKIP
>>> store = open_store("postgresql://user@db.example/feedback")  # doctest: +SKIP
>>> store.write([query], [event]); store.counts()        # doctest: +SKIP
(1, 1)

`open_store` takes a file path (SQLite) or a `postgresql://` URL, creates the tables if they are missing,
and fails with an `InputError` naming the store (its password masked) when it cannot be opened. Writes
come in batches, each batch one transaction.

Text is stored escaped where it must be (`store_text`, undone by `read_text` on every read): PostgreSQL
refuses a NUL character in text, so a NUL is stored as the six characters `\\u0000`, and, so that the rule
is reversible, a run of backslashes just before a NUL or before `u0000` in the text is doubled. Text with
neither (nearly all) is stored as it is, in both databases alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..errors import InputError
from .experiments import ExperimentRecord
from .records import EventRecord, QueryRecord, as_utc

log = logging.getLogger("prompt_retriever.feedback")

metadata = MetaData()
queries = Table(
    "ubi_queries",
    metadata,
    Column("query_id", String(36), primary_key=True),
    Column("timestamp", DateTime(timezone=True), nullable=False, index=True),
    Column("client_id", String(100)),
    Column("user_query", Text, nullable=False),
    Column("object_ids", JSON, nullable=False),  # the prompt ids answered, in rank order
    Column("k", Integer, nullable=False),
    Column("genre", String(1000)),
    Column("theme", String(1000)),
    Column("run", String(1000), nullable=False, default=""),
    Column("system", String(1000), nullable=False, default=""),
)
events = Table(
    "ubi_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("query_id", String(36), nullable=False, index=True),
    Column("timestamp", DateTime(timezone=True), nullable=False, index=True),
    Column("client_id", String(100), nullable=False),
    Column("action_name", String(100), nullable=False),
    Column("object_id", String(120), nullable=False),
    Column("position", Integer, nullable=False),
)
experiment_queries = Table(  # one row per search answered during an experiment (`serve --candidate`)
    "experiment_queries",
    metadata,
    Column("query_id", String(36), primary_key=True),
    Column("experiment", String(200), nullable=False, index=True),
    Column("mode", String(20), nullable=False),  # interleave | ab
    Column("arm", String(20), nullable=False),  # interleaved (interleave); current | candidate (ab)
    Column("teams", JSON),  # interleave: the team of each result in rank order; ab: null
    Column("current_run", String(1000), nullable=False),
    Column("candidate_run", String(1000), nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False, index=True),
)

POSTGRES_SCHEMES = ("postgresql", "postgres")


_ESCAPED = re.compile(r"(\\*)(\x00|u0000)")  # a NUL, or `u0000`, and the backslashes just before it
_STORED_ESCAPE = re.compile(r"(\\+)u0000")


def store_text(text: str | None) -> str | None:
    """`text` as it is stored (see the module's docstring): each NUL as `\\u0000`, each run of backslashes
    just before a NUL or `u0000` doubled; `read_text` undoes it."""
    if text is None or ("\x00" not in text and "u0000" not in text):
        return text
    return _ESCAPED.sub(lambda m: "\\" * (2 * len(m[1])) + ("\\u0000" if m[2] == "\x00" else "u0000"), text)


def read_text(stored: str | None) -> str | None:
    """The text `store_text` stored as `stored`: an odd run of backslashes before `u0000` ends in a NUL,
    an even one is half as many backslashes before a plain `u0000`."""
    if stored is None or "u0000" not in stored:
        return stored
    return _STORED_ESCAPE.sub(lambda m: "\\" * (len(m[1]) // 2) + ("\x00" if len(m[1]) % 2 else "u0000"), stored)


def is_postgres(target: str) -> bool:
    return target.split(":", 1)[0].split("+", 1)[0].lower() in POSTGRES_SCHEMES and "://" in target


def engine_url(target: str) -> str:
    """SQLAlchemy's URL for a store: `postgresql://...` (or `postgres://`) through psycopg 3, else a
    SQLite file at the path `target`."""
    if is_postgres(target):
        scheme, rest = target.split("://", 1)
        return f"postgresql+psycopg://{rest}"
    if "://" in target:
        raise InputError(
            f"feedback store {target.split('://', 1)[0]}:// is not supported: give a file path or postgresql://"
        )
    return f"sqlite:///{Path(target).expanduser().resolve()}"


def shown(target: str) -> str:
    """`target` as it may be printed or logged: a URL's password masked."""
    if not is_postgres(target):
        return target
    try:
        return make_url(engine_url(target)).render_as_string(hide_password=True).replace("+psycopg", "", 1)
    except ArgumentError:
        return "postgresql://(unreadable URL)"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (export, a second process) never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL's safe setting: a power cut loses at most the last commits
    cur.close()


@dataclass
class FeedbackStore:
    """The two tables in one database (see the module's docstring). Thread-safe: each call takes a
    connection of the engine's pool."""

    engine: Engine
    target: str

    # ------------------------------------------------------------------ writing
    def write(self, qs: Sequence[QueryRecord], es: Sequence[EventRecord], xs: Sequence[ExperimentRecord] = ()) -> None:
        """Insert queries, events and experiment records in one transaction (a query already stored is an
        error: ids are new)."""
        with self.engine.begin() as conn:
            if qs:
                conn.execute(insert(queries), [_query_row(q) for q in qs])
            if es:
                conn.execute(insert(events), [_event_row(e) for e in es])
            if xs:
                conn.execute(insert(experiment_queries), [_experiment_row(x) for x in xs])

    def purge(self, before: datetime) -> tuple[int, int]:
        """Remove the queries from before `before`, and the events from before it or about such a query
        (and the experiment records of those queries). (queries, events) removed."""
        old = select(queries.c.query_id).where(queries.c.timestamp < before)
        with self.engine.begin() as conn:
            n_events = conn.execute(
                delete(events).where(or_(events.c.timestamp < before, events.c.query_id.in_(old)))
            ).rowcount
            conn.execute(
                delete(experiment_queries).where(
                    or_(experiment_queries.c.timestamp < before, experiment_queries.c.query_id.in_(old))
                )
            )
            n_queries = conn.execute(delete(queries).where(queries.c.timestamp < before)).rowcount
        return n_queries, n_events

    # ------------------------------------------------------------------ reading
    def query(self, query_id: str) -> QueryRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(queries).where(queries.c.query_id == query_id)).mappings().first()
        return _query_record(row) if row is not None else None

    def counts(self) -> tuple[int, int]:
        """(queries, events) stored."""
        with self.engine.connect() as conn:
            nq = conn.execute(select(func.count()).select_from(queries)).scalar_one()
            ne = conn.execute(select(func.count()).select_from(events)).scalar_one()
        return nq, ne

    def queries(self, since: datetime | None = None, chunk: int = 1000) -> Iterator[QueryRecord]:
        """The queries in time order, from `since` on when given (the queries table alone: no event read)."""
        stmt = select(queries).order_by(queries.c.timestamp, queries.c.query_id)
        if since is not None:
            stmt = stmt.where(queries.c.timestamp >= since)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=chunk).execute(stmt).mappings():
                yield _query_record(row)

    def iter_queries(self, chunk: int = 1000) -> Iterator[tuple[QueryRecord, str | None]]:
        """Every query in time order, with the client id of its first event (for a query sent before the
        page had an id)."""
        first_client = (
            select(events.c.client_id)
            .where(events.c.query_id == queries.c.query_id)
            .order_by(events.c.event_id)
            .limit(1)
            .scalar_subquery()
        )
        stmt = select(queries, first_client.label("event_client_id")).order_by(queries.c.timestamp, queries.c.query_id)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=chunk).execute(stmt).mappings():
                yield _query_record(row), read_text(row["event_client_id"])

    def iter_events(self, chunk: int = 1000) -> Iterator[EventRecord]:
        """Every event in the order stored."""
        with self.engine.connect() as conn:
            stmt = select(events).order_by(events.c.event_id)
            for row in conn.execution_options(yield_per=chunk).execute(stmt).mappings():
                yield _event_record(row)

    def experiment_names(self) -> list[str]:
        """The experiments of which searches are stored, the one that started first first."""
        first = func.min(experiment_queries.c.timestamp)
        stmt = select(experiment_queries.c.experiment).group_by(experiment_queries.c.experiment)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(first, experiment_queries.c.experiment)).scalars().all()
        return [read_text(name) for name in rows]

    def experiment_setups(self, experiment: str) -> list[tuple[str, str]]:
        """The (mode, candidate run) pairs stored for `experiment` (one, unless it was run twice apart)."""
        x = experiment_queries.c
        stmt = select(x.mode, x.candidate_run).where(x.experiment == store_text(experiment)).distinct()
        with self.engine.connect() as conn:
            return [(mode, read_text(run)) for mode, run in conn.execute(stmt).all()]

    def experiment_records(self, experiment: str) -> list[ExperimentRecord]:
        """The searches of `experiment`, in time order."""
        x = experiment_queries.c
        stmt = (
            select(experiment_queries).where(x.experiment == store_text(experiment)).order_by(x.timestamp, x.query_id)
        )
        with self.engine.connect() as conn:
            return [_experiment_record(row) for row in conn.execute(stmt).mappings()]

    def experiment_events(self, experiment: str) -> list[EventRecord]:
        """The events about the searches of `experiment`, in the order stored."""
        of_it = select(experiment_queries.c.query_id).where(experiment_queries.c.experiment == store_text(experiment))
        stmt = select(events).where(events.c.query_id.in_(of_it)).order_by(events.c.event_id)
        with self.engine.connect() as conn:
            return [_event_record(row) for row in conn.execute(stmt).mappings()]

    def close(self) -> None:
        self.engine.dispose()


def _query_row(q: QueryRecord) -> dict:
    return {
        "query_id": q.query_id,
        "timestamp": q.timestamp,
        "client_id": store_text(q.client_id),
        "user_query": store_text(q.user_query),
        "object_ids": [store_text(o) for o in q.object_ids],
        "k": q.k,
        "genre": store_text(q.genre),
        "theme": store_text(q.theme),
        "run": store_text(q.run),
        "system": store_text(q.system),
    }


def _event_row(e: EventRecord) -> dict:
    return {
        "query_id": e.query_id,
        "timestamp": e.timestamp,
        "client_id": store_text(e.client_id),
        "action_name": store_text(e.action_name),
        "object_id": store_text(e.object_id),
        "position": e.position,
    }


def _experiment_row(x: ExperimentRecord) -> dict:
    return {
        "query_id": x.query_id,
        "experiment": store_text(x.experiment),
        "mode": x.mode,
        "arm": x.arm,
        "teams": list(x.teams) if x.teams is not None else None,
        "current_run": store_text(x.current_run),
        "candidate_run": store_text(x.candidate_run),
        "timestamp": x.timestamp,
    }


def _experiment_record(row) -> ExperimentRecord:
    return ExperimentRecord(
        row["query_id"],
        read_text(row["experiment"]),
        row["mode"],
        row["arm"],
        tuple(row["teams"]) if row["teams"] is not None else None,
        read_text(row["current_run"]),
        read_text(row["candidate_run"]),
        as_utc(row["timestamp"]),
    )


def _event_record(row) -> EventRecord:
    return EventRecord(
        row["query_id"],
        as_utc(row["timestamp"]),
        read_text(row["client_id"]),
        read_text(row["action_name"]),
        read_text(row["object_id"]),
        row["position"],
    )


def _query_record(row) -> QueryRecord:
    return QueryRecord(
        row["query_id"],
        as_utc(row["timestamp"]),
        read_text(row["client_id"]),
        read_text(row["user_query"]),
        tuple(read_text(o) for o in row["object_ids"]),
        row["k"],
        read_text(row["genre"]),
        read_text(row["theme"]),
        read_text(row["run"]),
        read_text(row["system"]),
    )


def open_store(target: str | Path, *, busy_timeout: float = 30.0) -> FeedbackStore:
    """The store at `target` (a SQLite file path, or a `postgresql://` URL), its tables created if missing.
    `busy_timeout`: seconds a SQLite write waits for another writer's lock. InputError if it cannot be
    opened (the message names the store, password masked, and the cause)."""
    target = str(target)
    url = engine_url(target)
    try:
        if url.startswith("sqlite"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": busy_timeout})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        metadata.create_all(engine)
    except (SQLAlchemyError, ArgumentError, OSError) as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise InputError(f"cannot open the feedback store {shown(target)}: {cause}") from None
    return FeedbackStore(engine, target)
