"""Importing a golden set someone else made: a flat `query,context,relevance` CSV, or a RAGAS test set.

Both end up as a `GoldenSet` (BEIR layout on disk) over a corpus, which `queries split`, `evaluate`,
`train` and the pipeline use like any other.

**Pairs** (`query,context,relevance`, the shape of the project's own `pairs.csv`; CSV or JSONL): the
context is a prompt's full tagged line (read with the corpus parser, repairs included) or just its
text (whitespace-normalised exact match). Relevance > 0 is a qrel (grade 2 from a relevance of 2 or
more, else 1); 0 is a judged negative (`Negative(type="judged")`).

**RAGAS** (`user_input, reference_contexts, ...`; CSV with the lists written as JSON or Python literals,
or JSONL): each reference chunk holds one or more tagged lines run together, the first and last
possibly cut mid-tag or mid-text. A prompt is relevant to a question when its whole text, or a
contiguous part of at least `MIN_WORDS` words or `MIN_CHARS` characters, appears in one of the
question's reference chunks. `retrieved_contexts`, `response` and `reference` are not judgments and
are not read.

Every problem is reported as FILE:LINE: severity: message (the line a record starts on); nothing is
dropped silently. Errors (a context or chunk that matches no prompt, an empty query, a relevance that is
not a number, contradictory judgments of one pair) stop the import unless `skip_invalid`, which drops
the offending row or pair and still reports it. Duplicate rows are kept once, with a warning. A context
that is one line of a record the corpus parser joins from two lines (only its tag pairs, or only the rest)
is mapped to the joined prompt, and each distinct repair of a context is reported once, however many rows
quote it. A RAGAS question judging more than `OVERCOUNT_MAX` prompts is flagged.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..corpus import (
    MAX_CORPUS_FILE_BYTES,
    DuplicateKeyError,
    Issue,
    IssueReport,
    Prompt,
    csv_value,
    loads_unique,
    name_clash,
    query_problem,
    same_names,
)
from ..errors import InputError
from ..fileio import read_at_most
from .goldenset import GoldenSet, Negative, Qrels, Query, make_query_id
from .matching import MIN_CHARS, MIN_WORDS, WORD, ContextMatch, PromptIndex, norm, preview

FORMATS = ("pairs", "ragas")
PAIRS_COLUMNS = ("query", "context", "relevance")
RAGAS_COLUMNS = ("user_input", "reference_contexts")
UNDERCOUNT_MIN = 3  # a genre/theme query judging 1 prompt is flagged when the corpus has this many of them
# A RAGAS question is flagged when its reference chunks make more prompts relevant than this: more than the
# cutoff of the headline metrics (@10), so any 10 of them score a perfect P@10 and NDCG@10 although the
# question asks about one story. Specific questions judge 1-3 prompts (the hand-judged natural queries:
# 2.95 on average); a chunk holding dozens of prompts is a slice of the file, not a judgment.
OVERCOUNT_MAX = 10
MAX_IMPORT_FILE_BYTES = 4 * MAX_CORPUS_FILE_BYTES  # read whole, like a corpus file; contexts repeat prompts

# Words that carry no topic in a request such as "Find me a Fantasy writing prompt".
_FILLER_WORDS = (
    "a an the some any one me i we you my our please find give show get want need looking look for suggest "
    "recommend write writing written prompt prompts story stories piece pieces idea ideas tale tales about of on "
    "in with to and or kind type sort genre theme themed something good new short"
)
_FILLER = frozenset(_FILLER_WORDS.split())


class GoldenImportError(InputError):
    """Raised when an import has errors and `skip_invalid` is off. Carries the full report."""

    def __init__(self, report: ImportReport):
        self.report = report
        super().__init__(f"cannot import {report.source} ({report.summary()}):\n{report.error_listing()}")


@dataclass
class ImportReport(IssueReport):
    source: str
    format: str
    rows: int = 0
    queries: int = 0
    positives: int = 0
    negatives: int = 0
    multi_relevant: int = 0  # queries with more than one relevant prompt
    duplicates: int = 0
    contradictions: int = 0
    dropped_rows: int = 0  # rows left out under skip_invalid (their problem is in `issues`)
    dropped_pairs: int = 0  # contradictory pairs left out under skip_invalid
    dropped_queries: int = 0  # queries left with no relevant prompt
    chunks: int = 0  # ragas: reference chunks read
    unmatched_chunks: int = 0  # ragas: chunks that matched no prompt
    undercounting: int = 0  # genre/theme queries judging one prompt of many
    overcounting: int = 0  # ragas: questions whose chunks make more than OVERCOUNT_MAX prompts relevant
    half_records: int = 0  # pairs: rows quoting one line of a record broken over two lines
    synthesizers: dict[str, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def judged_pairs(self) -> int:
        return self.positives + self.negatives

    @property
    def positives_per_query(self) -> float:
        return round(self.positives / self.queries, 2) if self.queries else 0.0

    def summary(self) -> str:
        return (
            f"{self.rows} rows read: {self.queries} queries, {self.judged_pairs} judged pairs, "
            f"{len(self.errors)} errors, {len(self.warnings)} warnings"
        )

    def lines(self) -> list[str]:
        """The report as printed: counts, then what was dropped or is suspect."""
        out = [
            f"imported {self.queries} queries from {self.source} ({self.format}): {self.judged_pairs} judged pairs "
            f"({self.positives} relevant, {self.negatives} judged negatives)",
            f"relevant prompts per query: mean {self.positives_per_query}; "
            f"{self.multi_relevant} of {self.queries} queries have more than one relevant prompt",
        ]
        if self.format == "ragas":
            out.append(f"reference chunks: {self.chunks} read, {self.unmatched_chunks} matched no prompt")
        if self.duplicates:
            out.append(f"duplicate rows kept once: {self.duplicates}")
        if self.contradictions:
            how = f"{self.dropped_pairs} pair(s) dropped" if self.dropped_pairs else "not imported"
            out.append(f"contradictory judgments: {self.contradictions} ({how})")
        if self.dropped_rows or self.dropped_queries:
            out.append(
                f"dropped: {self.dropped_rows} invalid row(s), {self.dropped_queries} queries with no relevant prompt"
            )
        if self.half_records:
            out.append(
                f"contexts quoting one half of a record broken over two lines: {self.half_records} rows, "
                "mapped to the joined prompt"
            )
        if self.undercounting:
            out.append(
                f"{self.undercounting} genre/theme queries judge only one prompt of many relevant: "
                "the metric then undercounts"
            )
        if self.overcounting:
            out.append(
                f"{self.overcounting} questions make more than {OVERCOUNT_MAX} prompts relevant: "
                "the metric then overcounts"
            )
        out.append(f"{len(self.errors)} errors, {len(self.warnings)} warnings")
        return out

    def to_dict(self, max_issues: int = 200) -> dict:
        return {
            "source": self.source,
            "format": self.format,
            "rows": self.rows,
            "queries": self.queries,
            "judged_pairs": self.judged_pairs,
            "positives": self.positives,
            "negatives": self.negatives,
            "positives_per_query_mean": self.positives_per_query,
            "queries_with_several_relevant": self.multi_relevant,
            "duplicates": self.duplicates,
            "contradictions": self.contradictions,
            "dropped_rows": self.dropped_rows,
            "dropped_pairs": self.dropped_pairs,
            "dropped_queries": self.dropped_queries,
            **({"chunks": self.chunks, "unmatched_chunks": self.unmatched_chunks} if self.format == "ragas" else {}),
            **({"synthesizers": self.synthesizers} if self.synthesizers else {}),
            "undercounting_queries": self.undercounting,
            "overcounting_queries": self.overcounting,
            "half_records": self.half_records,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "issues": [str(i) for i in self.issues[:max_issues]],
        }


# ----------------------------------------------------------------------------- reading records


def _read_text(path: Path) -> str:
    try:
        raw = read_at_most(path, MAX_IMPORT_FILE_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    if raw is None:
        raise InputError(f"{path}: the file is larger than {MAX_IMPORT_FILE_BYTES >> 20} MiB; split it")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: error: not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from exc


def _column(name: str) -> str:
    """How a column or JSON key is read: case and surrounding spaces ignored."""
    return name.strip().lower()


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson", ".json")


def _records(path: Path, report: ImportReport) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """(columns, iterator of (line the record starts on, record)). Unreadable records are reported, counted
    as read and dropped."""
    text = _read_text(path)

    def issue(line: int, message: str) -> None:
        report.issues.append(Issue(str(path), line, "error", message))
        report.rows += 1
        report.dropped_rows += 1

    if _is_jsonl(path):
        if text.lstrip().startswith("["):
            raise InputError(f"{path}:1: error: a JSON array; write one JSON object per line (JSONL)")
        rows: list[tuple[int, dict]] = []
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:  # keys are read case- and space-insensitively, so two that are one then are refused
                row = loads_unique(line, _column)
            except DuplicateKeyError as exc:
                issue(n, f"{exc}; record dropped")
                continue
            except (ValueError, RecursionError) as exc:
                issue(n, f"invalid JSON: {getattr(exc, 'msg', str(exc)[:80])}")
                continue
            if not isinstance(row, dict):
                issue(n, f"expected a JSON object, got {type(row).__name__}")
                continue
            rows.append((n, {_column(str(k)): v for k, v in row.items()}))
        columns = list(rows[0][1]) if rows else []
        return columns, iter(rows)

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{path}:1: error: unreadable CSV header: {exc}") from exc
    if header is None:
        return [], iter(())
    if clash := same_names(header, _column):
        raise InputError(f"{path}:1: error: CSV header: {name_clash(clash, 'column')}; rename one")
    columns = [_column(h) for h in header]

    def rows_of() -> Iterator[tuple[int, dict]]:
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                issue(start, f"unreadable CSV record ({exc}); the rest of the file is not read")
                return
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(columns):
                issue(start, f"row has {len(cells)} fields, header has {len(columns)}")
                continue
            yield start, dict(zip(columns, map(csv_value, cells), strict=True))  # '=x (neutralised) reads =x

    return columns, rows_of()


def detect_import_format(columns: Sequence[str]) -> str | None:
    """The format a file's columns imply: "pairs", "ragas" or None."""
    cols = set(columns)
    if set(RAGAS_COLUMNS) <= cols:
        return "ragas"
    if {"query", "context"} <= cols:
        return "pairs"
    return None


# ----------------------------------------------------------------------------- reading cells (matching: see .matching)


def _context_list(value: object) -> tuple[list[str] | None, str | None]:
    """A RAGAS context list: a list (JSONL), or a string holding a JSON or Python list literal."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        s = value.strip()
        if not s:
            return [], None
        try:
            items = json.loads(s)
        except (ValueError, RecursionError):
            try:
                items = ast.literal_eval(s)  # the Python form, e.g. ['a', "b"]; never eval
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return None, f"not a JSON or Python list literal: {preview(s, 50)!r}"
        if isinstance(items, tuple):
            items = list(items)
        if not isinstance(items, list):
            return None, f"expected a list of strings, got {type(items).__name__}"
    elif value is None:
        return [], None
    else:
        return None, f"expected a list of strings, got {type(value).__name__}"
    if not all(isinstance(x, str) for x in items):
        bad = next(x for x in items if not isinstance(x, str))
        return None, f"expected a list of strings, found a {type(bad).__name__}"
    return items, None


def _relevance(value: object) -> tuple[float | None, str | None]:
    if isinstance(value, bool):
        return float(value), None
    if isinstance(value, (int, float)):
        r = float(value)
    else:
        s = norm(value).lower()
        if s in ("true", "yes", "relevant"):
            return 1.0, None
        if s in ("false", "no", "irrelevant", "not relevant"):
            return 0.0, None
        try:
            r = float(s)
        except ValueError:
            return None, f"relevance {preview(s, 30)!r} is not a number"
    if not math.isfinite(r) or r < 0:
        return None, f"relevance {r} is not a number >= 0"
    return r, None


def _grade(relevance: float) -> int:
    """Relevance > 0 is a qrel: grade 2 from a relevance of 2 or more (graded files), else 1."""
    return 2 if relevance >= 2 else 1


# ----------------------------------------------------------------------------- genre/theme queries


def _named(query_words: list[str], names: Sequence[str]) -> tuple[set[str], set[int]]:
    """The corpus names (genres or themes) a query's words spell out, and the word positions they use."""
    found: set[str] = set()
    used: set[int] = set()
    for name in names:
        nw = WORD.findall(name.casefold())
        if not nw:
            continue
        for i in range(len(query_words) - len(nw) + 1):
            if query_words[i : i + len(nw)] == nw:
                found.add(name)
                used.update(range(i, i + len(nw)))
    return found, used


def undercount_warning(text: str, relevant: int, corpus: Sequence[Prompt]) -> str | None:
    """A warning for a genre/theme query ("Find a Fantasy writing prompt": nothing but genre and theme
    names and filler words) that judges one prompt relevant while the corpus has many that fit."""
    if relevant != 1:
        return None
    words = WORD.findall(text.casefold())
    genres, g_used = _named(words, sorted({p.genre for p in corpus}))
    themes, t_used = _named(words, sorted({p.theme for p in corpus}))
    if not genres and not themes:
        return None
    rest = [w for i, w in enumerate(words) if i not in g_used | t_used and w not in _FILLER]
    if rest:
        return None  # it asks for something more specific than the genre or theme
    fitting = [p for p in corpus if (not genres or p.genre in genres) and (not themes or p.theme in themes)]
    if len(fitting) < UNDERCOUNT_MIN:
        return None
    what = " + ".join([*sorted(genres), *sorted(themes)])
    return (
        f"query {text!r} asks for {what} ({len(fitting)} such prompts in the corpus) but judges only 1 prompt "
        "relevant: the metric then undercounts (a system returning another of them is scored as wrong); "
        "judge every fitting prompt or leave the query out"
    )


# ----------------------------------------------------------------------------- import


@dataclass
class _Acc:
    """Judgments being collected, keyed by query (case-folded text)."""

    text: dict[str, str] = field(default_factory=dict)  # key -> first spelling
    line: dict[str, int] = field(default_factory=dict)  # key -> first line
    judged: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (key, pid) -> (grade, line)
    conflicts: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=dict)

    def add_query(self, text: str, line: int) -> str:
        key = text.casefold()
        self.text.setdefault(key, text)
        self.line.setdefault(key, line)
        return key


def import_golden(
    path: str | Path,
    corpus: Sequence[Prompt],
    *,
    format: str | None = None,
    skip_invalid: bool = False,
) -> tuple[GoldenSet, ImportReport]:
    """Import a pairs CSV/JSONL or a RAGAS test set over `corpus` (format guessed from the columns).

    Raises `GoldenImportError` (with the full report) on any error unless `skip_invalid`, and
    `InputError` for a file that cannot be read at all. The golden set has no splits; its manifest
    holds the report under "import".
    """
    p = Path(path)
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown import format {format!r}: use pairs or ragas")
    report = ImportReport(source=str(p), format=format or "?")

    def issue(line: int, severity: str, message: str) -> None:
        report.issues.append(Issue(str(p), line, severity, message))  # type: ignore[arg-type]

    columns, records = _records(p, report)
    fmt = format or detect_import_format(columns)
    if fmt is None:
        raise InputError(
            f"{p}:1: error: cannot tell the format from the columns {columns}: pairs need "
            f"{','.join(PAIRS_COLUMNS)}; ragas need {','.join(RAGAS_COLUMNS)} (or pass --format)"
        )
    report.format = fmt
    need = PAIRS_COLUMNS if fmt == "pairs" else RAGAS_COLUMNS
    if columns and (missing := [c for c in need if c not in columns]):
        raise InputError(f"{p}:1: error: a {fmt} file needs column(s) {missing}; found {columns}")
    index = PromptIndex(corpus)
    acc = _Acc()
    kind = "imported" if fmt == "pairs" else "ragas"
    if fmt == "pairs":
        _read_pairs(records, index, acc, report, issue, skip_invalid)
    else:
        _read_ragas(records, index, acc, report, issue, skip_invalid)

    prompts = {pr.id: pr for pr in corpus}
    queries: list[Query] = []
    qrels: Qrels = {}
    negatives: list[Negative] = []
    by_key: dict[str, dict[str, int]] = {}
    for (key, pid), (grade, _) in acc.judged.items():
        by_key.setdefault(key, {})[pid] = grade
    for key, text in acc.text.items():
        judged = by_key.get(key, {})
        pos = {pid: g for pid, g in judged.items() if g > 0}
        if not pos:
            report.dropped_queries += 1
            why = "only judged negatives" if judged else "no judgment left"
            issue(acc.line[key], "warning", f"query {text!r} has no relevant prompt ({why}); left out")
            continue
        qid = make_query_id(kind, text)
        source = next(iter(pos)) if len(pos) == 1 else None  # so `queries split` keeps it with its prompt
        queries.append(Query(qid, text, kind, source))
        qrels[qid] = dict(sorted(pos.items()))
        negatives.extend(Negative(qid, pid, "judged") for pid, g in sorted(judged.items()) if g == 0)
        report.positives += len(pos)
        report.multi_relevant += len(pos) > 1
        if warning := undercount_warning(text, len(pos), corpus):
            report.undercounting += 1
            only = prompts[next(iter(pos))].title
            issue(acc.line[key], "warning", f"{warning} (judged: {only!r})")
    report.queries = len(queries)
    report.negatives = len(negatives)
    report.issues.sort(key=lambda i: (i.line, i.severity != "error"))
    if report.errors and not skip_invalid:
        raise GoldenImportError(report)
    if not queries:
        if report.errors:
            raise GoldenImportError(report)
        raise InputError(f"{p}: no query to import ({report.summary()})")
    manifest = {
        "generator": f"import:{fmt}",
        "source": str(p),
        "parameters": {"format": fmt, "skip_invalid": skip_invalid}
        | ({"min_words": MIN_WORDS, "min_chars": MIN_CHARS} if fmt == "ragas" else {}),
        "import": report.to_dict(),
    }
    gs = GoldenSet(list(corpus), queries, qrels, {}, negatives, manifest)
    gs.validate()
    return gs, report


def _read_pairs(records, index: PromptIndex, acc: _Acc, report: ImportReport, issue, skip: bool) -> None:
    repairs = _Repairs()
    for line, row in records:
        report.rows += 1
        text = norm(row.get("query"))
        problems = []
        if problem := query_problem(text):
            problems.append(problem)
        rel, rel_error = _relevance(row.get("relevance"))
        if rel_error:
            problems.append(rel_error)
        match = index.match_context(str(row.get("context") or ""))
        repairs.add(line, match)
        prompt = match.prompt
        if match.error:
            problems.append(match.error)
        if problems:
            for msg in problems:
                issue(line, "error", msg + ("; row dropped" if skip else ""))
            report.dropped_rows += 1
            continue
        assert prompt is not None and rel is not None
        key = acc.add_query(text, line)
        pair = (key, prompt.id)
        grade = _grade(rel) if rel > 0 else 0
        if pair in acc.conflicts:
            acc.conflicts[pair].append((line, rel))
            continue
        if pair not in acc.judged:
            acc.judged[pair] = (grade, line)
            continue
        first_grade, first_line = acc.judged[pair]
        if (first_grade > 0) != (grade > 0):
            acc.conflicts[pair] = [(first_line, float(first_grade)), (line, rel)]
            continue
        report.duplicates += 1
        if first_grade == grade:
            issue(
                line,
                "warning",
                f"duplicate row: query {text!r}, prompt {prompt.title!r} (first at line {first_line}); kept once",
            )
        else:
            issue(
                line,
                "warning",
                f"query {text!r}, prompt {prompt.title!r} judged grade {first_grade} at line {first_line} and "
                f"{grade} here; kept once, with grade {max(first_grade, grade)}",
            )
            acc.judged[pair] = (max(first_grade, grade), first_line)
    report.half_records += repairs.emit(issue)
    for (key, pid), seen in acc.conflicts.items():
        report.contradictions += 1
        acc.judged.pop((key, pid), None)
        title = index.by_id[pid].title
        where = ", ".join(f"{'relevant' if r > 0 else 'not relevant'} at line {n}" for n, r in seen)
        tail = "; the pair is dropped (--skip-invalid)" if skip else ""
        if skip:
            report.dropped_pairs += 1
        message = f"contradictory judgments of query {acc.text[key]!r} and prompt {title!r}: {where}{tail}"
        issue(seen[-1][0], "error", message)


def _lines(lines: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f", ... ({len(lines)} in all)" if len(lines) > limit else "")


@dataclass
class _Repairs:
    """The repairs made to pairs contexts, collected over the rows so that each is reported once: the
    parser's repairs by message, the rows quoting one line of a record broken over two lines by prompt."""

    by_message: dict[str, list[int]] = field(default_factory=dict)
    halves: dict[str, tuple[Prompt, dict[bool, tuple[ContextMatch, list[int]]]]] = field(default_factory=dict)

    def add(self, line: int, match: ContextMatch) -> None:
        for w in match.warnings:
            self.by_message.setdefault(w, []).append(line)
        if match.half is not None and match.prompt is not None:
            _, parts = self.halves.setdefault(match.prompt.id, (match.prompt, {}))
            parts.setdefault(match.half.head, (match, []))[1].append(line)

    def emit(self, issue) -> int:
        """Report each repair once, at the first row quoting it; returns the rows quoting a half record."""
        for message, lines in self.by_message.items():
            again = f" (the same repair on {len(lines)} rows: lines {_lines(lines)})" if len(lines) > 1 else ""
            issue(lines[0], "warning", message + again)
        rows = 0
        for prompt, parts in self.halves.values():
            clauses = []
            joined = None
            for head in (True, False):
                if head not in parts:
                    continue
                match, lines = parts[head]
                assert match.half is not None
                joined = joined or match.joined
                rows += len(lines)
                who = (
                    f"the row at line {lines[0]} quotes"
                    if len(lines) == 1
                    else f"the rows at lines {_lines(lines)} quote"
                )
                clauses.append(f"{who} only the {'first' if head else 'second'} half ({match.half.describe()})")
            where = (
                f"the record the corpus joins from {joined.where()}"
                if joined
                else "the only corpus prompt with those fields"
            )
            first = min(lines[0] for _, lines in parts.values())
            issue(first, "warning", f"{' and '.join(clauses)} of {prompt.title!r}, {where}; mapped to that prompt")
        return rows


def _read_ragas(records, index: PromptIndex, acc: _Acc, report: ImportReport, issue, skip: bool) -> None:
    synth: Counter[str] = Counter()
    seen_sets: dict[str, set[str]] = {}
    chunks_of: Counter[str] = Counter()  # reference chunks read per question
    for line, row in records:
        report.rows += 1
        text = norm(row.get("user_input"))
        chunks, list_error = _context_list(row.get("reference_contexts"))
        problems = []
        if problem := query_problem(text):
            problems.append(f"{problem} (user_input)")
        if list_error:
            problems.append(f"reference_contexts: {list_error}")
        elif not chunks:
            problems.append("no reference_contexts: nothing to judge the question by")
        relevant: set[str] = set()
        for i, chunk in enumerate(chunks or [], 1):
            report.chunks += 1
            found = index.match_chunk(chunk)
            if not found:
                report.unmatched_chunks += 1
                issue(
                    line,
                    "error",
                    f"reference context {i} of {len(chunks or [])} matches no prompt (no {MIN_WORDS} contiguous "
                    f"words or {MIN_CHARS} characters of a prompt text in it): {preview(norm(chunk))!r}"
                    + ("; chunk ignored" if skip else ""),
                )
            relevant |= found
        if problems or not relevant:
            for msg in problems:
                issue(line, "error", msg + ("; row dropped" if skip else ""))
            if not problems and skip:
                issue(line, "warning", f"question {text!r}: no reference context matches a prompt; row dropped")
            report.dropped_rows += 1
            continue
        if name := norm(row.get("synthesizer_name")):
            synth[name] += 1
        key = acc.add_query(text, line)
        if key in seen_sets:
            report.duplicates += 1
            first = acc.line[key]
            if relevant == seen_sets[key]:
                issue(line, "warning", f"duplicate question {text!r} (first at line {first}); kept once")
            else:
                issue(
                    line,
                    "warning",
                    f"question {text!r} repeated (first at line {first}) with other reference contexts; "
                    "their relevant prompts are merged",
                )
            seen_sets[key] |= relevant
        else:
            seen_sets[key] = set(relevant)
        chunks_of[key] += len(chunks or [])
        for pid in relevant:
            acc.judged.setdefault((key, pid), (1, line))
    report.synthesizers = dict(synth.most_common())
    for key, relevant in seen_sets.items():
        if len(relevant) > OVERCOUNT_MAX:
            report.overcounting += 1
            issue(
                acc.line[key],
                "warning",
                f"question {acc.text[key]!r}: its {chunks_of[key]} reference chunk(s) make {len(relevant)} prompts "
                f"relevant, more than {OVERCOUNT_MAX}: the chunks span many prompts, so the metric then overcounts "
                "(a system is scored right for returning any of them, whatever the question asks); keep only the "
                "chunks the question was written from, or leave the question out",
            )


def import_for_evaluation(
    path: str | Path,
    corpus: Sequence[Prompt],
    *,
    format: str | None = None,
    skip_invalid: bool = False,
    directory: str | Path | None = None,
) -> tuple[GoldenSet, ImportReport]:
    """Import and save to `directory` (a temporary folder when None), read it back, and put every query
    in the test split: a quick score of a file of one's own."""
    import tempfile

    gs, report = import_golden(path, corpus, format=format, skip_invalid=skip_invalid)
    gs.splits = {"test": [q.id for q in gs.queries]}
    if directory is not None:
        return GoldenSet.load(gs.save(directory)), report
    with tempfile.TemporaryDirectory(prefix="prompt-retriever-import-") as tmp:
        return GoldenSet.load(gs.save(tmp)), report
