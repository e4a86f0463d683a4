"""Reading a pairs file (`query,context,relevance`): each context matched to one corpus prompt, relevance to
a grade, duplicates kept once, contradictions reported, and each repair of a context reported once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...corpus import Prompt, query_problem
from ..matching import ContextMatch, PromptIndex, norm, preview
from .judgments import QueryJudgments
from .records import Records
from .report import ImportReport, IssueSink


def read_relevance(value: object) -> tuple[float | None, str | None]:
    """A relevance cell as a number >= 0 (true/yes/relevant 1, false/no/irrelevant 0), or the problem."""
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


def relevance_grade(relevance: float) -> int:
    """Relevance > 0 is a qrel: grade 2 from a relevance of 2 or more (graded files), else 1."""
    return 2 if relevance >= 2 else 1


def read_pairs(
    records: Records, index: PromptIndex, judgments: QueryJudgments, report: ImportReport, issue: IssueSink, skip: bool
) -> None:
    """Read pairs `records` into `judgments`, matching each context in `index`; `skip`: drop what is invalid."""
    repairs = ContextRepairs()
    for line, row in records:
        report.rows += 1
        text = norm(row.get("query"))
        problems = []
        if problem := query_problem(text):
            problems.append(problem)
        rel, rel_error = read_relevance(row.get("relevance"))
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
        key = judgments.add_query(text, line)
        pair = (key, prompt.id)
        grade = relevance_grade(rel) if rel > 0 else 0
        if pair in judgments.conflicts:
            judgments.conflicts[pair].append((line, rel))
            continue
        if pair not in judgments.judged:
            judgments.judged[pair] = (grade, line)
            continue
        first_grade, first_line = judgments.judged[pair]
        if (first_grade > 0) != (grade > 0):
            judgments.conflicts[pair] = [(first_line, float(first_grade)), (line, rel)]
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
            judgments.judged[pair] = (max(first_grade, grade), first_line)
    report.half_records += repairs.emit(issue)
    for (key, pid), seen in judgments.conflicts.items():
        report.contradictions += 1
        judgments.judged.pop((key, pid), None)
        title = index.by_id[pid].title
        where = ", ".join(f"{'relevant' if r > 0 else 'not relevant'} at line {n}" for n, r in seen)
        tail = "; the pair is dropped (--skip-invalid)" if skip else ""
        if skip:
            report.dropped_pairs += 1
        message = f"contradictory judgments of query {judgments.text[key]!r} and prompt {title!r}: {where}{tail}"
        issue(seen[-1][0], "error", message)


def _lines(lines: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f", ... ({len(lines)} in all)" if len(lines) > limit else "")


@dataclass
class ContextRepairs:
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

    def emit(self, issue: IssueSink) -> int:
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
