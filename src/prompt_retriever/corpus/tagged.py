"""The tagged-line format, one prompt per line::

    <Genre> </Genre> <Theme> </Theme> <Title> </Title> prompt TEXT

`parse_tagged_line` reads one line; `parse_tagged` reads a file's text into a `Collector`, repairing what
can be repaired (a missing '>', a tag closed with the genre's name, a missing `prompt` keyword, a record
broken over two lines) with a warning and reporting the rest as errors. `format_tagged_line` writes one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .collector import Collector
from .issues import JoinedRecord
from .lines import LINE_BREAK_RE, describe_breaks, split_lines
from .prompt import MAX_FIELD_CHARS, MAX_TEXT_CHARS, Prompt, collapse_spaces, title_key

FIELDS = ("genre", "theme", "title")
_WS = re.compile(r"\s*")
_ANGLE = re.compile(r"[<>]")
# The keyword between the tag pairs and the text (`match` it, or `strip_keyword`).
KEYWORD = re.compile(r"\s*prompt\b\s*:?\s*", re.IGNORECASE)
_TAGGISH = re.compile(r"</?[A-Za-z][^<>]*>")
# Every scan below is a find of the next "<" or ">" from a position that only moves forward, so a line
# is read in linear time whatever it holds (the regexes have no nested or overlapping repetition).


@dataclass
class TaggedLine:
    """One tagged line read (`parse_tagged_line`): its fields and text, or the errors; and the warnings."""

    values: dict[str, str] | None
    text: str | None
    errors: list[str]
    warnings: list[str]


def _read_open(line: str, pos: int) -> tuple[str, int, bool] | None:
    """An opening tag after optional spaces: (content, end, missing '>'), or None if there is none."""
    pos = _WS.match(line, pos).end()
    if not line.startswith("<", pos) or line.startswith("</", pos):
        return None
    m = _ANGLE.search(line, pos + 1)
    if m is None:
        return None
    if m.group() == ">":
        return line[pos + 1 : m.start()], m.end(), False
    if line.startswith("</", m.start()):  # "<Title </Title>": the '>' is missing
        return line[pos + 1 : m.start()], m.start(), True
    return None


def _read_close(line: str, pos: int) -> tuple[str, int] | None:
    pos = _WS.match(line, pos).end()
    if not line.startswith("</", pos):
        return None
    m = _ANGLE.search(line, pos + 2)
    if m is None or m.group() != ">":
        return None
    return line[pos + 2 : m.start()], m.end()


def _scan_pairs(
    line: str, first: int, values: dict[str, str], errors: list[str], warnings: list[str]
) -> tuple[int, str]:
    """Read the tag pairs of `FIELDS[first:]` into `values`. Returns (end, status): status "ok" (all read),
    "stop" (no opening tag where the next pair should start; end is where it stopped) or "broken" (an
    error was appended and reading cannot go on)."""
    pos = 0
    genre_ok = "genre" in values
    for idx in range(first, len(FIELDS)):
        name = FIELDS[idx]
        opening = _read_open(line, pos)
        if opening is None:
            return pos, "stop"
        raw, end, missing_gt = opening
        opened = collapse_spaces(raw)
        closing = _read_close(line, end)
        if closing is None:
            errors.append(f"{name} tag <{opened}> has no closing tag </{opened}>")
            return end, "broken"
        closed = collapse_spaces(closing[0])
        if missing_gt:
            warnings.append(f"{name} tag <{opened} is missing its '>'; repaired from </{closed}>")
        n_errors = len(errors)
        if not opened:
            errors.append(f"empty {name} tag <>")
        elif opened.casefold() != closed.casefold():
            genre = values.get("genre")
            if idx > 0 and genre_ok and not missing_gt and genre and closed.casefold() == genre.casefold():
                warnings.append(
                    f"{name} tag <{opened}> is closed by </{closed}>, the genre's name; read as <{opened}> </{opened}>"
                )
            else:
                errors.append(f"{name} closing tag </{closed}> does not match its opening tag <{opened}>")
        if len(errors) == n_errors and len(opened) > MAX_FIELD_CHARS:
            errors.append(f"{name} is longer than {MAX_FIELD_CHARS} characters")
        if idx == 0:
            genre_ok = len(errors) == n_errors
        values[name] = opened
        pos = closing[1]
    return pos, "ok"


def _parse_fields(
    line: str, first: int = 0, given: dict[str, str] | None = None, need_keyword: bool = False
) -> TaggedLine:
    errors: list[str] = []
    warnings: list[str] = []
    values: dict[str, str] = dict(given or {})
    pos, status = _scan_pairs(line, first, values, errors, warnings)
    if status == "stop":
        found = len(values)
        errors.append(
            f"expected <{FIELDS[found].capitalize()}> tag pair number {found + 1} of 3 (genre, theme, title); "
            f"found {found} tag pair(s)"
        )
    if errors:
        return TaggedLine(None, None, errors, warnings)
    rest = line[pos:]
    m_kw = KEYWORD.match(rest)
    if m_kw:
        text = rest[m_kw.end() :]
    elif need_keyword:
        return TaggedLine(None, None, ["no 'prompt' keyword"], warnings)
    else:
        text = rest
        if text.strip():
            warnings.append("missing 'prompt' keyword before the text; text taken after the title tag")
    text = collapse_spaces(text)
    if not text:
        errors.append("missing prompt text")
        return TaggedLine(None, None, errors, warnings)
    if len(text) > MAX_TEXT_CHARS:
        errors.append(f"prompt text is longer than {MAX_TEXT_CHARS} characters ({len(text)})")
        return TaggedLine(None, None, errors, warnings)
    if "<" in text and _TAGGISH.search(text):
        warnings.append("prompt text contains something that looks like a tag")
    return TaggedLine(values, text, errors, warnings)


def strip_keyword(text: str) -> str:
    """`text` without the `prompt` keyword it starts with, if it does."""
    m = KEYWORD.match(text)
    return text[m.end() :] if m else text


def parse_tagged_line(line: str) -> TaggedLine:
    """Parse one tagged line into its fields. Pure: no file, no line number."""
    return _parse_fields(line)


def _head_pairs(line: str) -> tuple[dict[str, str], list[str]] | None:
    """The first half of a record broken over two lines: 1-3 valid tag pairs and nothing else."""
    values: dict[str, str] = {}
    errors: list[str] = []
    warnings: list[str] = []
    pos, status = _scan_pairs(line, 0, values, errors, warnings)
    if status == "broken" or errors or not values or line[pos:].strip():
        return None
    return values, warnings


@dataclass(frozen=True)
class RecordHalf:
    """One line of a record broken over two lines, read alone (`parse_record_half`)."""

    head: bool  # True: the first line (tag pairs only); False: the second (the other pairs and the text)
    values: dict[str, str]  # the fields of this line's tag pairs, in order
    text: str | None  # the second line's prompt text

    def describe(self) -> str:
        """What the line holds: "the genre and theme pairs", "the title pair and the text"."""
        names = list(self.values)
        pairs = (", ".join(names[:-1]) + " and " if len(names) > 1 else "") + names[-1]
        pairs += " pairs" if len(names) > 1 else " pair"
        return f"the {pairs}" + ("" if self.head else " and the text")

    def fits(self, p: Prompt) -> bool:
        """Whether `p` has this line's fields (tag values case-folded, the title by `title_key`)."""
        for name, value in self.values.items():
            mine = title_key(value) if name == "title" else value.casefold()
            theirs = getattr(p, name)
            if mine != (title_key(theirs) if name == "title" else theirs.casefold()):
                return False
        return self.text is None or collapse_spaces(self.text) == collapse_spaces(p.text)


def parse_record_half(line: str) -> RecordHalf | None:
    """Read `line` as one line of a record broken over two lines, as the parser joins them: the first (1-3
    tag pairs and nothing else) or the second (the remaining 1-2 tag pairs, `prompt` and the text). None if
    it is neither (a whole record, or something else)."""
    head = _head_pairs(line)
    if head is not None:
        return RecordHalf(True, head[0], None)
    for first in (2, 1):  # the second line holds the title pair, or the theme and title pairs
        res = _parse_fields(line, first, {name: "" for name in FIELDS[:first]}, need_keyword=True)
        if not res.errors and res.values is not None and res.text is not None:
            return RecordHalf(False, {name: res.values[name] for name in FIELDS[first:]}, res.text)
    return None


def _tagged_line(raw: str) -> tuple[str | None, list[str]]:
    """A line ready to parse (None if it holds a NUL byte) and the warnings about it."""
    if "\x00" in raw:
        return None, []
    if LINE_BREAK_RE.search(raw) is None:
        return raw, []
    warning = (
        f"line break character(s) inside the line ({describe_breaks(raw)}): only \\n and \\r\\n end a line, "
        "so each is read as a space"
    )
    return LINE_BREAK_RE.sub(" ", raw), [warning]


def parse_tagged(path: Path, text: str, kind: str | None, c: Collector) -> None:
    """Read a tagged file's `text` into `c`, its prompts of `kind` (their collection)."""
    where = str(path)
    lines = split_lines(text)
    c.report.lines_read += len(lines)
    after_unjoined_head = False  # the line before was only tag pairs and could not be joined
    i = 0
    while i < len(lines):
        n = i + 1
        i += 1
        line, warnings = _tagged_line(lines[n - 1])
        if line is None:
            c.issue(where, n, "error", "line contains a NUL byte")
            after_unjoined_head = False
            continue
        if not line.strip():
            c.report.blank_lines += 1
            after_unjoined_head = False
            continue
        res = parse_tagged_line(line)
        if not res.errors and res.values is not None and res.text is not None:
            for w in warnings + res.warnings:
                c.issue(where, n, "warning", w)
            v = res.values
            c.add(where, n, v["genre"], v["theme"], v["title"], res.text, kind)
            after_unjoined_head = False
            continue
        head = _head_pairs(line)
        if head is not None and not after_unjoined_head and n < len(lines):
            nxt, next_warnings = _tagged_line(lines[n])
            if nxt is not None:
                values, head_warnings = head
                cont = _parse_fields(nxt, len(values), values, need_keyword=True)
                if not cont.errors and cont.values is not None and cont.text is not None:
                    for w in warnings + head_warnings:
                        c.issue(where, n, "warning", w)
                    v = cont.values
                    joined_prompt = c.add(where, n, v["genre"], v["theme"], v["title"], cont.text, kind)
                    if joined_prompt is not None:
                        c.report.joined.append(JoinedRecord(joined_prompt.id, where, n, line, nxt))
                    joined = (
                        f"record broken over lines {n} and {n + 1} (line {n} has only tag pairs); "
                        "joined into one prompt"
                    )
                    for w in [*next_warnings, *cont.warnings, joined]:
                        c.issue(where, n + 1, "warning", w)
                    i += 1
                    after_unjoined_head = False
                    continue
        for w in warnings + res.warnings:
            c.issue(where, n, "warning", w)
        for e in res.errors:
            c.issue(where, n, "error", e)
        after_unjoined_head = head is not None


def format_tagged_line(p: Prompt) -> str:
    """One tagged line; raises ValueError for a prompt the format cannot represent unambiguously."""
    for name in ("genre", "theme", "title"):
        value = getattr(p, name)
        if "<" in value or ">" in value or value.startswith("/") or value != collapse_spaces(value) or not value:
            raise InputError(f"prompt {p.id}: {name} {value!r} cannot be written as a tag (use .csv or .jsonl)")
    if p.text != collapse_spaces(p.text) or not p.text or p.text.startswith(":"):
        raise InputError(f"prompt {p.id}: text cannot be written on one tagged line (use .csv or .jsonl)")
    return f"<{p.genre}> </{p.genre}> <{p.theme}> </{p.theme}> <{p.title}> </{p.title}> prompt {p.text}"
