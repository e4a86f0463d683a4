"""Untrusted text made inert where it is shown: on a terminal and in a log line.

The bottom layer (it imports nothing of the package), so the CLI and the server share one definition of
the characters a terminal or a log reader acts on and one way of showing them (`\\x1b`, `\\u202e`).

Example:
    >>> terminal_text("title\\x1b]0;pwned\\x07")
    'title\\\\x1b]0;pwned\\\\x07'
    >>> log_text("/a\\nb")
    '/a\\\\nb'
"""

from __future__ import annotations

import re

# DEL, C1 controls and the Unicode line and paragraph separators; with the C0 controls below.
_CONTROLS = r"\x7f-\x9f\u2028\u2029"
# Bidi marks, embeddings, overrides and isolates: they reorder what a reader sees.
_BIDI = r"\u200e\u200f\u202a-\u202e\u2066-\u2069"

# On a terminal, tab and newline are layout and stay; every other C0 control is shown, and bidi too.
_UNSAFE_ON_TERMINAL = re.compile(rf"[\x00-\x08\x0b-\x1f{_CONTROLS}{_BIDI}]")
# In a log line nothing may start a new line, and backslash is escaped so that an escape is unambiguous.
_UNSAFE_IN_LOG = re.compile(rf"[\x00-\x1f{_CONTROLS}\\]")
_LOG_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escaped_char(ch: str) -> str:
    """`ch` as a visible escape: `\\xNN` below U+0100, else `\\uNNNN`."""
    c = ord(ch)
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def terminal_text(text: object) -> str:
    """`text` with every character a terminal acts on (controls but tab and newline, bidi) shown as an
    escape, so no escape sequence, title change or reordering takes effect. Markup is not escaped here:
    the CLI's `safe` adds rich's escaping on top."""
    return _UNSAFE_ON_TERMINAL.sub(lambda m: escaped_char(m[0]), str(text))


def log_text(text: str) -> str:
    """`text` with control characters (C0, DEL, C1, Unicode line separators) and backslashes escaped, so
    that nothing a client sends (e.g. `%0a` in a path) can start a forged line in the log."""
    return _UNSAFE_IN_LOG.sub(lambda m: _LOG_ESCAPES.get(m[0]) or escaped_char(m[0]), text)
