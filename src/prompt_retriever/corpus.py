"""The prompt corpus: the `Prompt` record, parsers for the tagged-line, CSV and JSONL formats, and stats.

Tagged-line format, one prompt per line::

    <Genre> </Genre> <Theme> </Theme> <Title> </Title> prompt TEXT

Every line of an input file ends up either as a `Prompt` or as an `Issue` naming the file, the line
and the problem; nothing is dropped silently. Blank lines are counted, not reported. In every format
only LF and CRLF end a line (`split_lines`); every format obeys the same field rules (strings,
not empty, no NUL, length caps, safe ids, duplicates compared by `title_key`); and every parser runs
in linear time on any input.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from .errors import InputError, PromptRetrieverError
from .fileio import atomic_write_jsonl, atomic_write_text, read_at_most, sha256_text

Severity = Literal["error", "warning"]
MAX_FIELD_CHARS = 200
MAX_TEXT_CHARS = 5000
# The most one corpus file may hold. A file is read whole (raw bytes, text, lines: about four times its
# size at the peak), so this bounds the memory a file can take; a prompt is at most ~6 KB, so it is room
# for 20,000+ of the longest prompts, 400,000 of the bundled ones. More prompts: several files.
MAX_CORPUS_FILE_BYTES = 128 << 20


@dataclass(frozen=True)
class Prompt:
    """One creative-writing prompt."""

    id: str
    genre: str
    theme: str
    title: str
    text: str
    kind: str | None = None  # "fiction" | "nonfiction" | None
    source: str | None = None  # "file:line" it was read from

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> Prompt:
        return cls(**{k: row.get(k) for k in ("id", "genre", "theme", "title", "text", "kind", "source")})


@dataclass(frozen=True)
class Issue:
    path: str
    line: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"


# The warnings that say a line was repaired, by kind: (kind, what a count of them is, the message pattern).
REPAIR_KINDS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("joined", "records broken over two lines, joined", re.compile(r"\brecord broken over lines \d+ and \d+")),
    ("genre-name", "tags closed with the genre's name", re.compile(r"\bis closed by </[^>]*>, the genre's name")),
    ("missing-gt", "tags missing their '>'", re.compile(r"\bis missing its '>'")),
    ("keyword", "texts without the 'prompt' keyword", re.compile(r"\bmissing 'prompt' keyword")),
    ("line-break", "lines with line-break characters read as spaces", re.compile(r"\bline break(?:\(s\)| char)")),
    ("utf-8", "lines with undecodable bytes replaced", re.compile(r"\bnot valid UTF-8\b.*replaced")),
)
SHOWN_PER_KIND = 3  # repairs of one kind listed without --verbose


def repair_kind(issue: Issue) -> str | None:
    """The kind of repair a warning reports (see `REPAIR_KINDS`), or None."""
    return next((kind for kind, _, pattern in REPAIR_KINDS if pattern.search(issue.message)), None)


@dataclass(frozen=True)
class IssueListing:
    """A report as printed: the issues to list, in order, then summary lines (`IssueReport.listing`)."""

    issues: list[Issue]
    summary: list[str]


class IssueReport:
    """What a report of `Issue`s offers: its errors and its warnings (CorpusReport, the import report)."""

    issues: list[Issue]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def error_listing(self, limit: int = 20) -> str:
        """The first `limit` errors, one a line, and how many more there are."""
        shown = "\n".join(str(i) for i in self.errors[:limit])
        more = len(self.errors) - limit
        return shown + (f"\n... and {more} more errors" if more > 0 else "")

    def listing(self, verbose: bool = False, first: int = SHOWN_PER_KIND) -> IssueListing:
        """What to print: every error and every warning that is not a repair, in order, but of each kind of
        repair (`REPAIR_KINDS`) only the first `first`, and a summary line counting each kind by which some
        were held back. `verbose`: every issue, no summary."""
        if verbose:
            return IssueListing(list(self.issues), [])
        seen: Counter[str] = Counter()
        shown: list[Issue] = []
        for issue in self.issues:
            kind = repair_kind(issue) if issue.severity == "warning" else None
            if kind is not None:
                seen[kind] += 1
                if seen[kind] > first:
                    continue
            shown.append(issue)
        if all(n <= first for n in seen.values()):
            return IssueListing(shown, [])
        kinds = "; ".join(
            f"{seen[kind]} {label}" + (f" (first {first} listed)" if seen[kind] > first else "")
            for kind, label, _ in REPAIR_KINDS
            if seen[kind]
        )
        return IssueListing(shown, [f"repairs by kind: {kinds}; --verbose lists every one"])


@dataclass(frozen=True)
class JoinedRecord:
    """A record broken over two lines that the parser joined: the prompt, where, and the two lines."""

    prompt_id: str
    path: str
    line: int  # the first of the two lines
    head: str  # line `line`: tag pairs only
    tail: str  # line `line + 1`: the remaining tag pairs and the text

    def where(self) -> str:
        return f"lines {self.line} and {self.line + 1} of {self.path}"


@dataclass
class CorpusReport(IssueReport):
    prompts: list[Prompt] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    lines_read: int = 0
    blank_lines: int = 0
    joined: list[JoinedRecord] = field(default_factory=list)  # records broken over two lines, joined

    def summary(self) -> str:
        return (
            f"{self.lines_read} lines read: {len(self.prompts)} prompts, {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings, {self.blank_lines} blank lines"
        )


class CorpusError(PromptRetrieverError, ValueError):
    """Raised when a corpus has invalid lines and `skip_invalid` is off. Carries the full report."""

    def __init__(self, report: CorpusReport):
        self.report = report
        super().__init__(f"invalid corpus ({report.summary()}):\n{report.error_listing()}")


# ----------------------------------------------------------------------------- ids


def slugify(text: str, max_len: int = 48) -> str:
    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", norm).strip("-")
    return (slug[:max_len].rstrip("-")) or "prompt"


def make_prompt_id(genre: str, theme: str, title: str, text: str) -> str:
    """Stable id: title slug plus a short hash of the content, so re-ordering a file keeps ids."""
    digest = hashlib.sha1("\x1f".join((genre, theme, title, text)).encode("utf-8")).hexdigest()[:8]
    return f"{slugify(title)}-{digest}"


def _clean(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip()


# ----------------------------------------------------------------------------- lines and fields

# What `str.splitlines` also breaks on. Here only "\n" and "\r\n" end a line, in every format; these are
# content, read as a space (like any whitespace) with a warning, so they never cut a prompt short or
# shift the numbers of later lines.
_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_BREAK_RE = re.compile(f"[{_LINE_BREAKS}]")
_FIELD_BREAK_RE = re.compile(f"[\n{_LINE_BREAKS}]")  # in a CSV or JSON field, "\n" is content too
_BREAK_NAMES = {
    "\n": "LINE FEED",
    "\r": "CARRIAGE RETURN",
    "\x0b": "LINE TABULATION",
    "\x0c": "FORM FEED",
    "\x1c": "FILE SEPARATOR",
    "\x1d": "GROUP SEPARATOR",
    "\x1e": "RECORD SEPARATOR",
}
# Invisible characters that make two titles look the same; ignored by the duplicate check.
_INVISIBLE_RE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# A given id (CSV/JSONL): safe as a file name and in a URL, and never a path.
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")
ID_RULE = "1-120 characters from A-Z a-z 0-9 . _ - starting with a letter or digit"


def split_lines(text: str) -> list[str]:
    """The lines of a file: only LF and CRLF end a line (unlike `str.splitlines`)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _describe_breaks(value: str) -> str:
    found = Counter(m.group() for m in _FIELD_BREAK_RE.finditer(value))
    parts = []
    for ch, n in found.items():
        name = _BREAK_NAMES.get(ch) or unicodedata.name(ch, "")
        parts.append(f"U+{ord(ch):04X} {name}" + (f" ({n}x)" if n > 1 else ""))
    return ", ".join(parts)


def title_key(title: str) -> str:
    """What the duplicate check compares: NFKC, case-folded, invisible characters dropped, spaces collapsed."""
    norm = _INVISIBLE_RE.sub("", unicodedata.normalize("NFKC", title))
    return _clean(unicodedata.normalize("NFKC", norm.casefold()))


def id_problem(pid: str) -> str | None:
    """Why `pid` is not a safe prompt id, or None."""
    if _ID_RE.fullmatch(pid):
        return None
    shown = pid if len(pid) <= 40 else pid[:40] + "..."
    return f"invalid id {shown!r}: an id is {ID_RULE}"


# ----------------------------------------------------------------------------- tagged lines

_FIELDS = ("genre", "theme", "title")
_WS = re.compile(r"\s*")
_ANGLE = re.compile(r"[<>]")
_KEYWORD = re.compile(r"\s*prompt\b\s*:?\s*", re.IGNORECASE)
_TAGGISH = re.compile(r"</?[A-Za-z][^<>]*>")
# Every scan below is a find of the next "<" or ">" from a position that only moves forward, so a line
# is read in linear time whatever it holds (the regexes have no nested or overlapping repetition).


@dataclass
class _LineResult:
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
    """Read the tag pairs of `_FIELDS[first:]` into `values`. Returns (end, status): status "ok" (all read),
    "stop" (no opening tag where the next pair should start; end is where it stopped) or "broken" (an
    error was appended and reading cannot go on)."""
    pos = 0
    genre_ok = "genre" in values
    for idx in range(first, len(_FIELDS)):
        name = _FIELDS[idx]
        opening = _read_open(line, pos)
        if opening is None:
            return pos, "stop"
        raw, end, missing_gt = opening
        opened = _clean(raw)
        closing = _read_close(line, end)
        if closing is None:
            errors.append(f"{name} tag <{opened}> has no closing tag </{opened}>")
            return end, "broken"
        closed = _clean(closing[0])
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
) -> _LineResult:
    errors: list[str] = []
    warnings: list[str] = []
    values: dict[str, str] = dict(given or {})
    pos, status = _scan_pairs(line, first, values, errors, warnings)
    if status == "stop":
        found = len(values)
        errors.append(
            f"expected <{_FIELDS[found].capitalize()}> tag pair number {found + 1} of 3 (genre, theme, title); "
            f"found {found} tag pair(s)"
        )
    if errors:
        return _LineResult(None, None, errors, warnings)
    rest = line[pos:]
    m_kw = _KEYWORD.match(rest)
    if m_kw:
        text = rest[m_kw.end() :]
    elif need_keyword:
        return _LineResult(None, None, ["no 'prompt' keyword"], warnings)
    else:
        text = rest
        if text.strip():
            warnings.append("missing 'prompt' keyword before the text; text taken after the title tag")
    text = _clean(text)
    if not text:
        errors.append("missing prompt text")
        return _LineResult(None, None, errors, warnings)
    if len(text) > MAX_TEXT_CHARS:
        errors.append(f"prompt text is longer than {MAX_TEXT_CHARS} characters ({len(text)})")
        return _LineResult(None, None, errors, warnings)
    if "<" in text and _TAGGISH.search(text):
        warnings.append("prompt text contains something that looks like a tag")
    return _LineResult(values, text, errors, warnings)


def parse_tagged_line(line: str) -> _LineResult:
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
        return self.text is None or _clean(self.text) == _clean(p.text)


def parse_record_half(line: str) -> RecordHalf | None:
    """Read `line` as one line of a record broken over two lines, as the parser joins them: the first (1-3
    tag pairs and nothing else) or the second (the remaining 1-2 tag pairs, `prompt` and the text). None if
    it is neither (a whole record, or something else)."""
    head = _head_pairs(line)
    if head is not None:
        return RecordHalf(True, head[0], None)
    for first in (2, 1):  # the second line holds the title pair, or the theme and title pairs
        res = _parse_fields(line, first, {name: "" for name in _FIELDS[:first]}, need_keyword=True)
        if not res.errors and res.values is not None and res.text is not None:
            return RecordHalf(False, {name: res.values[name] for name in _FIELDS[first:]}, res.text)
    return None


def _infer_kind(path: str) -> str | None:
    stem = Path(path).stem.lower()
    if "nonfiction" in stem or "non-fiction" in stem or "non_fiction" in stem:
        return "nonfiction"
    if "fiction" in stem:
        return "fiction"
    return None


class _Collector:
    """Accumulates prompts and issues across files, checking duplicate titles and ids."""

    def __init__(self) -> None:
        self.report = CorpusReport()
        self._titles: dict[str, tuple[str, str]] = {}
        self._ids: dict[str, str] = {}

    def issue(self, path: str, line: int, severity: Severity, message: str) -> None:
        self.report.issues.append(Issue(path, line, severity, message))

    def add(
        self,
        path: str,
        line: int,
        genre: str,
        theme: str,
        title: str,
        text: str,
        kind: str | None,
        given_id: str | None = None,
    ) -> Prompt | None:
        """The prompt added, or None (a duplicate, reported)."""
        where = f"{path}:{line}"
        key = title_key(title)
        if key in self._titles:
            first_where, first_title = self._titles[key]
            same = f" as {first_title!r}" if first_title != title else ""
            self.issue(path, line, "error", f"duplicate title {title!r} (first at {first_where}{same})")
            return None
        pid = given_id or make_prompt_id(genre, theme, title, text)
        if pid in self._ids:
            self.issue(path, line, "error", f"duplicate id {pid!r} (first at {self._ids[pid]})")
            return None
        self._titles[key] = (where, title)
        self._ids[pid] = where
        prompt = Prompt(id=pid, genre=genre, theme=theme, title=title, text=text, kind=kind, source=where)
        self.report.prompts.append(prompt)
        return prompt


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def read_corpus_bytes(path: str | Path) -> bytes:
    """The bytes of one corpus file, read once (so a pipe such as `/dev/stdin` works) and never more than
    `MAX_CORPUS_FILE_BYTES`: a larger regular file is refused before it is read, an endless one (a device)
    once that much is read. Raises `InputError` naming the file."""
    try:
        raw = read_at_most(path, MAX_CORPUS_FILE_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    if raw is None:
        raise InputError(
            f"{path}: the file is larger than {_mib(MAX_CORPUS_FILE_BYTES)}, the most a corpus file may hold; "
            "split it into several files"
        )
    return raw


def _read_text(path: Path, collector: _Collector, raw: bytes | None = None) -> str | None:
    """The text of one corpus file (`raw`: its bytes, already read); None, with the problem reported,
    when it cannot be read."""
    if raw is None:
        try:
            raw = read_corpus_bytes(path)
        except InputError as exc:
            collector.issue(str(path), 0, "error", str(exc).removeprefix(f"{path}: "))
            return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        collector.issue(
            str(path),
            raw[: exc.start].count(b"\n") + 1,
            "warning",
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); undecodable bytes replaced",
        )
        return raw.decode("utf-8-sig", errors="replace")


def _tagged_line(raw: str) -> tuple[str | None, list[str]]:
    """A line ready to parse (None if it holds a NUL byte) and the warnings about it."""
    if "\x00" in raw:
        return None, []
    if _LINE_BREAK_RE.search(raw) is None:
        return raw, []
    warning = (
        f"line break character(s) inside the line ({_describe_breaks(raw)}): only \\n and \\r\\n end a line, "
        "so each is read as a space"
    )
    return _LINE_BREAK_RE.sub(" ", raw), [warning]


def _parse_tagged(path: Path, text: str, kind: str | None, c: _Collector) -> None:
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


# ----------------------------------------------------------------------------- queries

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


# ----------------------------------------------------------------------------- CSV cells, JSON keys

# What makes a spreadsheet read a CSV cell as a formula (OWASP, "CSV injection"): = + - @, a tab, a CR.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CSV_ESCAPED_STARTS = (*CSV_FORMULA_STARTS, "'")


def csv_cell(value: str) -> str:
    """`value` as a CSV cell a spreadsheet shows as text and never runs as a formula: a value starting with
    one of `CSV_FORMULA_STARTS` gets a leading apostrophe (OWASP's advice), and so does one that already
    starts with an apostrophe followed by one of those or by another apostrophe, so that `csv_value` gives
    back exactly `value`. Every CSV this toolkit writes goes through it."""
    if value[:1] in CSV_FORMULA_STARTS or (value[:1] == "'" and value[1:2] in _CSV_ESCAPED_STARTS):
        return "'" + value
    return value


def csv_value(cell: str) -> str:
    """The value `csv_cell` wrote (a cell like `'=x` reads `=x`); any other cell as it is, so `'Tis` stays."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in _CSV_ESCAPED_STARTS else cell


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """CSV text (LF line ends) of `rows`, every string cell through `csv_cell`. A row with a CR in a cell is
    written with every cell quoted: the csv module quotes only the line terminator's characters, and a bare
    CR would end the record early for any reader."""
    buf = io.StringIO()
    plain = csv.writer(buf, lineterminator="\n")
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        cells = [csv_cell(c) if isinstance(c, str) else c for c in row]
        (quoted if any(isinstance(c, str) and "\r" in c for c in cells) else plain).writerow(cells)
    return buf.getvalue()


def same_names(names: Iterable[str], normalise=lambda name: name) -> tuple[str, str] | None:
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


class DuplicateKeyError(ValueError):
    """A JSON object that names a key twice (or two keys that are one once normalised)."""


def loads_unique(text: str, normalise=lambda key: key) -> object:
    """`json.loads`, refusing any object with a key given twice (Python keeps the last one silently), or
    two keys equal once `normalise`d: `DuplicateKeyError`, which says which keys."""

    def pairs_hook(pairs: list[tuple[str, object]]) -> dict:
        if clash := same_names((k for k, _ in pairs), normalise):
            raise DuplicateKeyError(name_clash(clash, "key"))
        return dict(pairs)

    return json.loads(text, object_pairs_hook=pairs_hook)


# ----------------------------------------------------------------------------- CSV and JSONL records

_REQUIRED = ("genre", "theme", "title", "text")
_OPTIONAL = ("id", "kind")


def _add_record(path: Path, n: int, row: dict, kind: str | None, c: _Collector, span: str = "") -> None:
    """One CSV row or JSON object, under the same field rules as a tagged line."""
    where = str(path)
    errors: list[str] = []
    raw: dict[str, str] = {}
    for k in (*_REQUIRED, *_OPTIONAL):
        value = row.get(k)
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(f"field {k} must be a string, got {type(value).__name__}")
            continue
        raw[k] = value
    bad_type = {e.split()[1] for e in errors}
    missing = [k for k in _REQUIRED if k not in bad_type and not _clean(raw.get(k, ""))]
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
    broken = [k for k, v in row.items() if isinstance(v, str) and _FIELD_BREAK_RE.search(v)]
    if broken:
        codes = _describe_breaks("".join(row[k] for k in broken))
        fields = ", ".join(broken)
        c.issue(where, n, "warning", f"line break(s) inside field(s) {fields} ({codes}); read as spaces{span}")
    vals = {k: _clean(raw[k]) for k in _REQUIRED}
    row_kind = _clean(raw.get("kind", ""))
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


@dataclass
class _CsvRecord:
    line: int  # first physical line
    last_line: int
    fields: list[str]
    error: str | None


_CSV_FIELD_END = re.compile(r"[,\n]")


def _next_line(text: str, pos: int, line: int) -> tuple[int, int]:
    """(position, number) of the line after the one holding `pos`, which is line `line`."""
    eol = text.find("\n", pos)
    return (len(text), line) if eol < 0 else (eol + 1, line + 1)


def _csv_records(text: str) -> Iterable[_CsvRecord]:
    """Split CSV text (RFC 4180, the `csv` module's default dialect) into records, in linear time.

    Records end at LF or CRLF outside quotes; a lone CR is content. A record with a quoting error
    (an unclosed quote, text after a closing quote) is yielded with `error` set, and reading resumes on
    the line after the one where the offending quoted field opened, so one stray quote cannot swallow
    the rest of the file."""
    pos, line, size = 0, 1, len(text)
    while pos < size:
        start_line = line
        fields: list[str] = []
        error: str | None = None
        resume: tuple[int, int] | None = None  # (position, line) to go on from after a quoting error
        while True:
            if text.startswith('"', pos):
                q_line = line
                chunks: list[str] = []
                p = pos + 1
                q = text.find('"', p)
                while q >= 0 and text.startswith('"', q + 1):  # "" is an escaped quote
                    chunks.append(text[p : q + 1])
                    p = q + 2
                    q = text.find('"', p)
                opened_at = pos
                if q < 0:
                    error = (
                        f"unclosed quote: field {len(fields) + 1} opens a quote on line {q_line} that is never "
                        f"closed; reading goes on with line {q_line + 1}"
                    )
                    resume = _next_line(text, opened_at, q_line)
                    break
                chunks.append(text[p:q])
                value = "".join(chunks)
                line += text.count("\n", pos, q)
                pos = q + 1
                if text.startswith("\r", pos) and (pos + 1 == size or text[pos + 1] == "\n"):
                    pos += 1
                if pos < size and text[pos] not in ",\n":
                    if line == q_line:
                        error = f"text after the closing quote of field {len(fields) + 1}"
                    else:
                        error = (
                            f"text after the closing quote of field {len(fields) + 1} (the quote opens on line "
                            f"{q_line} and closes on line {line}); reading goes on with line {q_line + 1}"
                        )
                        resume = _next_line(text, opened_at, q_line)
                        break
                    m = _CSV_FIELD_END.search(text, pos)
                    pos = size if m is None else m.start()
            else:
                m = _CSV_FIELD_END.search(text, pos)
                end = size if m is None else m.start()
                value = text[pos:end]
                if m is not None and value.endswith("\r"):  # the "\r" of "\r\n"
                    value = value[:-1]
                pos = end
            fields.append(value)
            if pos < size and text[pos] == ",":
                pos += 1
                continue
            break
        if resume is not None:
            yield _CsvRecord(start_line, resume[1] - 1 if resume[0] < size else line, fields, error)
            pos, line = resume
            continue
        yield _CsvRecord(start_line, line, fields, error)
        if pos < size:  # at the "\n" ending the record
            pos += 1
            line += 1


def _parse_csv(path: Path, text: str, kind: str | None, c: _Collector) -> None:
    where = str(path)
    records = iter(_csv_records(text))
    first = next(records, None)
    if first is None:
        return
    if first.error:
        c.issue(where, 1, "error", f"unreadable CSV header: {first.error}")
        return
    header = [h.strip().lower() for h in first.fields]
    if clash := same_names(first.fields, lambda h: h.strip().lower()):
        c.issue(where, 1, "error", f"CSV header: {name_clash(clash, 'column')}; rename one")
        return
    missing = [k for k in _REQUIRED if k not in header]
    if missing:
        c.issue(where, 1, "error", f"CSV header lacks column(s) {missing}; need id,genre,theme,title,text")
        return
    c.report.lines_read += len(split_lines(text))
    for rec in records:
        n = rec.line
        span = f" (the record spans lines {n}-{rec.last_line})" if rec.last_line > n else ""
        if rec.error:
            c.issue(where, n, "error", rec.error if "reading goes on" in rec.error else rec.error + span)
            continue
        blank = not any(cell.strip() for cell in rec.fields) and rec.last_line == n
        if blank and len(rec.fields) in (1, len(header)):  # an empty line, or a row of empty cells
            c.report.blank_lines += 1
            continue
        if len(rec.fields) != len(header):
            c.issue(where, n, "error", f"row has {len(rec.fields)} fields, header has {len(header)}{span}")
            continue
        _add_record(path, n, dict(zip(header, map(csv_value, rec.fields), strict=True)), kind, c, span)


def _parse_jsonl(path: Path, text: str, kind: str | None, c: _Collector) -> None:
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
        _add_record(path, n, row, kind, c)


def detect_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "tagged"


def read_corpus(
    paths: str | Path | Sequence[str | Path],
    kind: str | None = None,
    *,
    data: Sequence[bytes] | None = None,
) -> CorpusReport:
    """Parse one or more corpus files into a report (prompts + issues); never raises on bad lines.

    `data`: the files' bytes, already read (`read_corpus_bytes`), one per path, so that a caller that
    hashes a pipe first reads it only once; else each file is read here."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if data is not None and len(data) != len(paths):
        raise InputError(f"{len(paths)} corpus files but {len(data)} contents")
    c = _Collector()
    for i, p in enumerate(paths):
        path = Path(p)
        text = _read_text(path, c, None if data is None else data[i])
        if text is None:
            continue
        file_kind = kind or _infer_kind(str(path))
        fmt = detect_format(path)
        if fmt == "csv":
            _parse_csv(path, text, file_kind, c)
        elif fmt == "jsonl":
            _parse_jsonl(path, text, file_kind, c)
        else:
            _parse_tagged(path, text, file_kind, c)
    return c.report


def load_corpus(
    paths: str | Path | Sequence[str | Path] | None = None,
    *,
    skip_invalid: bool = False,
    kind: str | None = None,
) -> list[Prompt]:
    """Load prompts; raise `CorpusError` on any invalid line unless `skip_invalid`. None = bundled corpus."""
    report = read_corpus(paths if paths is not None else bundled_corpus_paths(), kind=kind)
    if report.errors and not skip_invalid:
        raise CorpusError(report)
    return report.prompts


# ----------------------------------------------------------------------------- bundled corpus, writing


def bundled_corpus_paths() -> list[Path]:
    data = resources.files("prompt_retriever") / "data"
    return [Path(str(data / name)) for name in ("fiction.txt", "nonfiction.txt")]


def corpus_fingerprint(prompts: Iterable[Prompt]) -> str:
    """Hash of the prompts' content (ids and fields), independent of file order and source paths."""
    rows = sorted(json.dumps([p.id, p.genre, p.theme, p.title, p.text, p.kind]) for p in prompts)
    return sha256_text("\n".join(rows))[:16]


def format_tagged_line(p: Prompt) -> str:
    """One tagged line; raises ValueError for a prompt the format cannot represent unambiguously."""
    for name in ("genre", "theme", "title"):
        value = getattr(p, name)
        if "<" in value or ">" in value or value.startswith("/") or value != _clean(value) or not value:
            raise InputError(f"prompt {p.id}: {name} {value!r} cannot be written as a tag (use .csv or .jsonl)")
    if p.text != _clean(p.text) or not p.text or p.text.startswith(":"):
        raise InputError(f"prompt {p.id}: text cannot be written on one tagged line (use .csv or .jsonl)")
    return f"<{p.genre}> </{p.genre}> <{p.theme}> </{p.theme}> <{p.title}> </{p.title}> prompt {p.text}"


def write_corpus(prompts: Iterable[Prompt], path: str | Path) -> Path:
    """Write prompts in the format the file suffix implies (.txt tagged, .csv, .jsonl), atomically."""
    prompts = list(prompts)
    fmt = detect_format(path)
    if fmt in ("csv", "jsonl"):  # the tagged format stores no id (it is made from the content)
        for p in prompts:
            if problem := id_problem(p.id):
                raise InputError(f"prompt {p.id[:40]!r}: {problem}; it would not read back")
    if fmt == "jsonl":
        return atomic_write_jsonl(path, [p.to_dict() | {"source": None} for p in prompts])
    if fmt == "csv":
        header = [("id", "genre", "theme", "title", "text", "kind")]
        rows = [(p.id, p.genre, p.theme, p.title, p.text, p.kind or "") for p in prompts]
        return atomic_write_text(path, csv_text(header + rows))
    return atomic_write_text(path, "".join(format_tagged_line(p) + "\n" for p in prompts))


# ----------------------------------------------------------------------------- stats


@dataclass
class CorpusStats:
    count: int
    by_genre: dict[str, int]
    by_theme: dict[str, int]
    by_kind: dict[str, int]
    genres_per_theme: dict[str, int]
    words: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def corpus_stats(prompts: Sequence[Prompt]) -> CorpusStats:
    lengths = sorted(len(p.text.split()) for p in prompts) or [0]

    def pct(q: float) -> float:
        return float(lengths[min(len(lengths) - 1, int(q * (len(lengths) - 1) + 0.5))])

    genres_of_theme: dict[str, set[str]] = {}
    for p in prompts:
        genres_of_theme.setdefault(p.theme, set()).add(p.genre)
    return CorpusStats(
        count=len(prompts),
        by_genre=dict(Counter(p.genre for p in prompts).most_common()),
        by_theme=dict(Counter(p.theme for p in prompts).most_common()),
        by_kind=dict(Counter(p.kind or "unknown" for p in prompts).most_common()),
        genres_per_theme={t: len(g) for t, g in sorted(genres_of_theme.items(), key=lambda kv: -len(kv[1]))},
        words={
            "min": float(lengths[0]),
            "p25": pct(0.25),
            "median": pct(0.5),
            "p75": pct(0.75),
            "max": float(lengths[-1]),
            "mean": round(sum(lengths) / len(lengths), 1),
        },
    )
