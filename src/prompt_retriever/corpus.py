"""The prompt corpus: the `Prompt` record, parsers for the tagged-line, CSV and JSONL formats, and stats.

Tagged-line format, one prompt per line::

    <Genre> </Genre> <Theme> </Theme> <Title> </Title> prompt TEXT

Every line of an input file ends up either as a `Prompt` or as an `Issue` naming the file, the line
and the problem; nothing is dropped silently. Blank lines are counted, not reported.
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
from .fileio import atomic_write_jsonl, atomic_write_text, sha256_text

Severity = Literal["error", "warning"]
MAX_FIELD_CHARS = 200
MAX_TEXT_CHARS = 5000


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


@dataclass
class CorpusReport:
    prompts: list[Prompt] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    lines_read: int = 0
    blank_lines: int = 0

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def summary(self) -> str:
        return (
            f"{self.lines_read} lines read: {len(self.prompts)} prompts, {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings, {self.blank_lines} blank lines"
        )


class CorpusError(PromptRetrieverError, ValueError):
    """Raised when a corpus has invalid lines and `skip_invalid` is off. Carries the full report."""

    def __init__(self, report: CorpusReport):
        self.report = report
        shown = "\n".join(str(i) for i in report.errors[:20])
        more = len(report.errors) - 20
        tail = f"\n... and {more} more errors" if more > 0 else ""
        super().__init__(f"invalid corpus ({report.summary()}):\n{shown}{tail}")


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


# ----------------------------------------------------------------------------- tagged lines

_FIELDS = ("genre", "theme", "title")
_OPEN = re.compile(r"\s*<(?!/)([^<>]*)>")
_OPEN_NO_GT = re.compile(r"\s*<(?!/)([^<>]*?)\s*(?=</)")
_CLOSE = re.compile(r"\s*</([^<>]*)>")
_KEYWORD = re.compile(r"\s*prompt\b\s*:?\s*", re.IGNORECASE)


@dataclass
class _LineResult:
    values: dict[str, str] | None
    text: str | None
    errors: list[str]
    warnings: list[str]


def parse_tagged_line(line: str) -> _LineResult:
    """Parse one tagged line into its fields. Pure: no file, no line number."""
    errors: list[str] = []
    warnings: list[str] = []
    values: dict[str, str] = {}
    pos = 0
    for name in _FIELDS:
        m_open = _OPEN.match(line, pos)
        missing_gt = False
        if not m_open:
            m_open = _OPEN_NO_GT.match(line, pos)
            missing_gt = m_open is not None
        if not m_open:
            found = len(values)
            errors.append(
                f"expected <{name.capitalize()}> tag pair number {found + 1} of 3 (genre, theme, title); "
                f"found {found} tag pair(s)"
            )
            return _LineResult(None, None, errors, warnings)
        opened = _clean(m_open.group(1))
        m_close = _CLOSE.match(line, m_open.end())
        if not m_close:
            errors.append(f"{name} tag <{opened}> has no closing tag </{opened}>")
            return _LineResult(None, None, errors, warnings)
        closed = _clean(m_close.group(1))
        if missing_gt:
            warnings.append(f"{name} tag <{opened} is missing its '>'; repaired from </{closed}>")
        if not opened:
            errors.append(f"empty {name} tag <>")
        elif opened.casefold() != closed.casefold():
            errors.append(f"{name} closing tag </{closed}> does not match its opening tag <{opened}>")
        elif len(opened) > MAX_FIELD_CHARS:
            errors.append(f"{name} is longer than {MAX_FIELD_CHARS} characters")
        values[name] = opened
        pos = m_close.end()
    if errors:
        return _LineResult(None, None, errors, warnings)
    rest = line[pos:]
    m_kw = _KEYWORD.match(rest)
    if m_kw:
        text = rest[m_kw.end() :]
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
    if "<" in text and re.search(r"</?[A-Za-z][^<>]*>", text):
        warnings.append("prompt text contains something that looks like a tag")
    return _LineResult(values, text, errors, warnings)


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
        self._titles: dict[str, str] = {}
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
    ) -> None:
        where = f"{path}:{line}"
        key = title.casefold()
        if key in self._titles:
            self.issue(path, line, "error", f"duplicate title {title!r} (first at {self._titles[key]})")
            return
        pid = given_id or make_prompt_id(genre, theme, title, text)
        if pid in self._ids:
            self.issue(path, line, "error", f"duplicate id {pid!r} (first at {self._ids[pid]})")
            return
        self._titles[key] = where
        self._ids[pid] = where
        self.report.prompts.append(
            Prompt(id=pid, genre=genre, theme=theme, title=title, text=text, kind=kind, source=where)
        )


def _read_text(path: Path, collector: _Collector) -> str | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        collector.issue(str(path), 0, "error", f"cannot read file: {exc.strerror or exc}")
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


def _parse_tagged(path: Path, text: str, kind: str | None, c: _Collector) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        c.report.lines_read += 1
        if "\x00" in line:
            c.issue(str(path), n, "error", "line contains a NUL byte")
            continue
        if not line.strip():
            c.report.blank_lines += 1
            continue
        res = parse_tagged_line(line)
        for w in res.warnings:
            c.issue(str(path), n, "warning", w)
        if res.errors or res.values is None or res.text is None:
            for e in res.errors:
                c.issue(str(path), n, "error", e)
            continue
        v = res.values
        c.add(str(path), n, v["genre"], v["theme"], v["title"], res.text, kind)


_REQUIRED = ("genre", "theme", "title", "text")


def _add_record(path: Path, n: int, row: dict, kind: str | None, c: _Collector) -> None:
    missing = [k for k in _REQUIRED if not _clean(str(row.get(k) or ""))]
    if missing:
        c.issue(str(path), n, "error", f"missing or empty field(s): {', '.join(missing)}")
        return
    vals = {k: _clean(str(row[k])) for k in _REQUIRED}
    too_long = [k for k in ("genre", "theme", "title") if len(vals[k]) > MAX_FIELD_CHARS]
    if too_long:
        c.issue(str(path), n, "error", f"field(s) longer than {MAX_FIELD_CHARS} characters: {too_long}")
        return
    row_kind = _clean(str(row.get("kind") or "")) or kind
    given_id = _clean(str(row.get("id") or "")) or None
    c.add(str(path), n, vals["genre"], vals["theme"], vals["title"], vals["text"], row_kind, given_id)


def _parse_csv(path: Path, text: str, kind: str | None, c: _Collector) -> None:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        c.issue(str(path), 1, "error", f"unreadable CSV header: {exc}")
        return
    missing = [k for k in _REQUIRED if k not in header]
    if missing:
        c.issue(str(path), 1, "error", f"CSV header lacks column(s) {missing}; need id,genre,theme,title,text")
        return
    c.report.lines_read += 1
    prev_line = reader.line_num
    while True:
        n = prev_line + 1  # first physical line of this record
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            c.issue(str(path), n, "error", f"malformed CSV: {exc}")
            break
        c.report.lines_read += reader.line_num - prev_line
        prev_line = reader.line_num
        if not any(cell.strip() for cell in row):
            c.report.blank_lines += 1
            continue
        if len(row) != len(header):
            c.issue(str(path), n, "error", f"row has {len(row)} fields, header has {len(header)}")
            continue
        _add_record(path, n, dict(zip(header, row, strict=True)), kind, c)


def _parse_jsonl(path: Path, text: str, kind: str | None, c: _Collector) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        c.report.lines_read += 1
        if not line.strip():
            c.report.blank_lines += 1
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            c.issue(str(path), n, "error", f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(row, dict):
            c.issue(str(path), n, "error", f"expected a JSON object, got {type(row).__name__}")
            continue
        _add_record(path, n, row, kind, c)


def detect_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "tagged"


def read_corpus(paths: str | Path | Sequence[str | Path], kind: str | None = None) -> CorpusReport:
    """Parse one or more corpus files into a report (prompts + issues); never raises on bad lines."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    c = _Collector()
    for p in paths:
        path = Path(p)
        text = _read_text(path, c)
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
    if fmt == "jsonl":
        return atomic_write_jsonl(path, [p.to_dict() | {"source": None} for p in prompts])
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["id", "genre", "theme", "title", "text", "kind"])
        for p in prompts:
            w.writerow([p.id, p.genre, p.theme, p.title, p.text, p.kind or ""])
        return atomic_write_text(path, buf.getvalue())
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
