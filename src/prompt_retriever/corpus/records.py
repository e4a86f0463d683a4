"""The field rules of a CSV row or a JSON object, the same as a tagged line's (`add_record`), and the
check for names that clash once normalised (CSV columns, JSON keys)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from .collector import Collector
from .lines import FIELD_BREAK_RE, describe_breaks
from .prompt import MAX_FIELD_CHARS, MAX_TEXT_CHARS, collapse_spaces, id_problem

REQUIRED_FIELDS = ("genre", "theme", "title", "text")
OPTIONAL_FIELDS = ("id", "kind")


def same_names(names: Iterable[str], normalise: Callable[[str], str] = lambda name: name) -> tuple[str, str] | None:
    """The first two of `names` that are one name once `normalise`d, or None."""
    seen: dict[str, str] = {}
    for name in names:
        key = normalise(name)
        if key in seen:
            return seen[key], name
        seen[key] = name
    return None


def name_clash(clash: tuple[str, str], what: str) -> str:
    """`same_names`'s answer in words: "key 'a' is given twice", "columns 'a' and 'A' are one column ..."."""
    first, second = clash
    if first == second:
        return f"{what} {first!r} is given twice"
    return f"{what}s {first!r} and {second!r} are one column once case and spaces are ignored"


def add_record(path: Path, n: int, row: dict, kind: str | None, c: Collector, span: str = "") -> None:
    """One CSV row or JSON object, under the same field rules as a tagged line."""
    where = str(path)
    errors: list[str] = []
    raw: dict[str, str] = {}
    for k in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS):
        value = row.get(k)
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(f"field {k} must be a string, got {type(value).__name__}")
            continue
        raw[k] = value
    bad_type = {e.split()[1] for e in errors}
    missing = [k for k in REQUIRED_FIELDS if k not in bad_type and not collapse_spaces(raw.get(k, ""))]
    if missing:
        errors.append(f"missing or empty field(s): {', '.join(missing)}")
    nul = [k for k, v in raw.items() if "\x00" in v]
    if nul:
        errors.append(f"field(s) contain a NUL byte: {', '.join(nul)}")
    if errors:
        for e in errors:
            c.issue(where, n, "error", e + span)
        return
    # every column, known or not, so that a CSV record spanning several lines always says so
    broken = [k for k, v in row.items() if isinstance(v, str) and FIELD_BREAK_RE.search(v)]
    if broken:
        codes = describe_breaks("".join(row[k] for k in broken))
        fields = ", ".join(broken)
        c.issue(where, n, "warning", f"line break(s) inside field(s) {fields} ({codes}); read as spaces{span}")
    vals = {k: collapse_spaces(raw[k]) for k in REQUIRED_FIELDS}
    row_kind = collapse_spaces(raw.get("kind", ""))
    too_long = [k for k, v in (*vals.items(), ("kind", row_kind)) if k != "text" and len(v) > MAX_FIELD_CHARS]
    if too_long:
        errors.append(f"field(s) longer than {MAX_FIELD_CHARS} characters: {too_long}")
    if len(vals["text"]) > MAX_TEXT_CHARS:
        errors.append(f"prompt text is longer than {MAX_TEXT_CHARS} characters ({len(vals['text'])})")
    given_id = raw.get("id", "").strip() or None
    if given_id is not None and (problem := id_problem(given_id)):
        errors.append(problem)
    if errors:
        for e in errors:
            c.issue(where, n, "error", e + span)
        return
    c.add(where, n, vals["genre"], vals["theme"], vals["title"], vals["text"], row_kind or kind, given_id)
