"""The one rule for a query at every entry point: it needs a visible character (`query_problem`,
`check_query`, and `QUERY_PATTERN` for the API's `q`)."""

from __future__ import annotations

import re

from ..errors import InputError

# Characters that show nothing: white space, controls (C0, DEL, C1), and Unicode's default-ignorable
# characters of the Basic Multilingual Plane (zero-width and bidi formats, joiners, variation selectors,
# the Hangul fillers U+115F, U+1160, U+3164 and U+FFA0, the soft hyphen, the byte-order mark), plus the
# blank Braille pattern U+2800. Spelled out as one class of BMP escapes so that Python's re, pydantic's
# Rust regex and an API client's ECMAScript regex read it alike (the API's `q` pattern is QUERY_PATTERN).
INVISIBLE_CHARS = (
    r"\x00-\x20\x7f-\xa0\xad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f\u2000-\u200f"
    r"\u2028-\u202f\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
QUERY_PATTERN = f"[^{INVISIBLE_CHARS}]"  # what a query must contain somewhere: one visible character
_VISIBLE_RE = re.compile(QUERY_PATTERN)


def query_problem(query: object) -> str | None:
    """Why `query` is no search, or None: the one rule of every entry point (`search`, the API's `q`
    pattern, `PromptRetriever.search`/`search_requests`, imported and judged query files).

    A query needs one visible character (`QUERY_PATTERN`). NUL, a zero-width space (U+200B), the blank
    Braille pattern (U+2800) or a Hangul filler (U+3164) alone would otherwise be embedded into an
    arbitrary vector and answered with arbitrary prompts."""
    if not isinstance(query, str):
        return f"a query must be a string, not {type(query).__name__}"
    if not query.strip():
        return "empty query"
    if not _VISIBLE_RE.search(query):
        shown = query if len(query) <= 40 else query[:37] + "..."
        return f"empty query {shown!r}: it has no visible character"
    return None


def check_query(query: str) -> str:
    """`query` without surrounding white space; `InputError` when it is no search (`query_problem`)."""
    if problem := query_problem(query):
        raise InputError(problem)
    return query.strip()
