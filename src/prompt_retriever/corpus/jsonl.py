"""JSON Lines: a JSONL corpus (`parse_jsonl`), and `loads_unique`, which refuses a JSON object naming a key
twice (Python's `json` keeps the last one silently)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .collector import Collector
from .lines import split_lines
from .records import add_record, name_clash, same_names


class DuplicateKeyError(ValueError):
    """A JSON object that names a key twice (or two keys that are one once normalised)."""


def loads_unique(text: str, normalise: Callable[[str], str] = lambda key: key) -> object:
    """`json.loads`, refusing any object with a key given twice (Python keeps the last one silently), or
    two keys equal once `normalise`d: `DuplicateKeyError`, which says which keys."""

    def pairs_hook(pairs: list[tuple[str, object]]) -> dict:
        if clash := same_names((k for k, _ in pairs), normalise):
            raise DuplicateKeyError(name_clash(clash, "key"))
        return dict(pairs)

    return json.loads(text, object_pairs_hook=pairs_hook)


def parse_jsonl(path: Path, text: str, kind: str | None, c: Collector) -> None:
    where = str(path)
    for n, line in enumerate(split_lines(text), 1):
        c.report.lines_read += 1
        if not line.strip():
            c.report.blank_lines += 1
            continue
        try:
            row = loads_unique(line)
        except DuplicateKeyError as exc:
            c.issue(where, n, "error", str(exc))
            continue
        except json.JSONDecodeError as exc:
            c.issue(where, n, "error", f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        except RecursionError:
            c.issue(where, n, "error", "invalid JSON: nested too deeply")
            continue
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            c.issue(where, n, "error", f"invalid JSON: {str(exc).split(';')[0]}")
            continue
        if not isinstance(row, dict):
            c.issue(where, n, "error", f"expected a JSON object, got {type(row).__name__}")
            continue
        add_record(path, n, row, kind, c)
