"""Reading a RAGAS test set (`user_input, reference_contexts, ...`): each question's reference chunks matched
to the prompts they hold; a question whose chunks make too many prompts relevant is flagged."""

from __future__ import annotations

import ast
import json
from collections import Counter

from ...corpus import query_problem
from ..matching import MIN_CHARS, MIN_WORDS, PromptIndex, norm, preview
from .judgments import QueryJudgments
from .records import Records
from .report import OVERCOUNT_MAX, ImportReport, IssueSink


def context_list(value: object) -> tuple[list[str] | None, str | None]:
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


def read_ragas(
    records: Records, index: PromptIndex, judgments: QueryJudgments, report: ImportReport, issue: IssueSink, skip: bool
) -> None:
    """Read RAGAS `records` into `judgments`, matching each chunk in `index`; `skip`: drop what is invalid."""
    synth: Counter[str] = Counter()
    seen_sets: dict[str, set[str]] = {}
    chunks_of: Counter[str] = Counter()  # reference chunks read per question
    for line, row in records:
        report.rows += 1
        text = norm(row.get("user_input"))
        chunks, list_error = context_list(row.get("reference_contexts"))
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
        key = judgments.add_query(text, line)
        if key in seen_sets:
            report.duplicates += 1
            first = judgments.line[key]
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
            judgments.judged.setdefault((key, pid), (1, line))
    report.synthesizers = dict(synth.most_common())
    for key, relevant in seen_sets.items():
        if len(relevant) > OVERCOUNT_MAX:
            report.overcounting += 1
            question = judgments.text[key]
            issue(
                judgments.line[key],
                "warning",
                f"question {question!r}: its {chunks_of[key]} reference chunk(s) make {len(relevant)} prompts "
                f"relevant, more than {OVERCOUNT_MAX}: the chunks span many prompts, so the metric then overcounts "
                "(a system is scored right for returning any of them, whatever the question asks); keep only the "
                "chunks the question was written from, or leave the question out",
            )
