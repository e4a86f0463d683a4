"""UBI export: the store as two JSON-lines files other tools read (OpenSearch's `ubi_queries` and
`ubi_events` indexes, Search Relevance Workbench, anything that reads the UBI 1.3.0 JSON schemas).

>>> export_ubi(open_store("feedback.db"), Path("ubi/"))   # doctest: +SKIP
ExportCounts(queries=120, events=45)

`DIR/ubi_queries.jsonl` has one UBI query per line, `DIR/ubi_events.jsonl` one UBI event per line (see
`records.ubi_query` and `records.ubi_event`); each file is written whole beside its target and renamed
over it, so a reader never sees half an export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..fileio import staged_files
from .records import ubi_event, ubi_query
from .store import FeedbackStore

QUERIES_FILE = "ubi_queries.jsonl"
EVENTS_FILE = "ubi_events.jsonl"


@dataclass(frozen=True)
class ExportCounts:
    queries: int
    events: int


def export_ubi(store: FeedbackStore, out_dir: Path) -> ExportCounts:
    """Write `QUERIES_FILE` and `EVENTS_FILE` into `out_dir` (created if missing)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_queries = n_events = 0
    with staged_files(out_dir, "ubi-export") as staged:
        with open(staged / QUERIES_FILE, "w", encoding="utf-8") as fh:
            for q, event_client in store.iter_queries():
                fh.write(json.dumps(ubi_query(q, event_client), ensure_ascii=False) + "\n")
                n_queries += 1
        with open(staged / EVENTS_FILE, "w", encoding="utf-8") as fh:
            for e in store.iter_events():
                fh.write(json.dumps(ubi_event(e), ensure_ascii=False) + "\n")
                n_events += 1
    return ExportCounts(n_queries, n_events)
