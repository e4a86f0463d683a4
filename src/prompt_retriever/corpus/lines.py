"""Lines and line breaks, alike in every format: only LF and CRLF end a line (`split_lines`); every other
line-break character is content, read as a space with a warning (`describe_breaks` names them)."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# What `str.splitlines` also breaks on. Here only "\n" and "\r\n" end a line, in every format; these are
# content, read as a space (like any whitespace) with a warning, so they never cut a prompt short or
# shift the numbers of later lines.
LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
LINE_BREAK_RE = re.compile(f"[{LINE_BREAKS}]")
FIELD_BREAK_RE = re.compile(f"[\n{LINE_BREAKS}]")  # in a CSV or JSON field, "\n" is content too
_BREAK_NAMES = {
    "\n": "LINE FEED",
    "\r": "CARRIAGE RETURN",
    "\x0b": "LINE TABULATION",
    "\x0c": "FORM FEED",
    "\x1c": "FILE SEPARATOR",
    "\x1d": "GROUP SEPARATOR",
    "\x1e": "RECORD SEPARATOR",
}


def split_lines(text: str) -> list[str]:
    """The lines of a file: only LF and CRLF end a line (unlike `str.splitlines`)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def describe_breaks(value: str) -> str:
    """The line-break characters in `value`, by code point and name, with their counts."""
    found = Counter(m.group() for m in FIELD_BREAK_RE.finditer(value))
    parts = []
    for ch, n in found.items():
        name = _BREAK_NAMES.get(ch) or unicodedata.name(ch, "")
        parts.append(f"U+{ord(ch):04X} {name}" + (f" ({n}x)" if n > 1 else ""))
    return ", ".join(parts)
