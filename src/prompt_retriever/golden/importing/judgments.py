"""The judgments an import collects, keyed by query, before they become a golden set's qrels and negatives."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class QueryJudgments:
    """Judgments being collected, keyed by query (its case-folded text): each query's first spelling and line,
    the grade of each (query, prompt) pair, and the pairs judged both relevant and not (`conflicts`)."""

    text: dict[str, str] = field(default_factory=dict)  # key -> first spelling
    line: dict[str, int] = field(default_factory=dict)  # key -> first line
    judged: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (key, pid) -> (grade, line)
    conflicts: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=dict)

    def add_query(self, text: str, line: int) -> str:
        """The key of query `text`, first seen at `line` unless seen before."""
        key = text.casefold()
        self.text.setdefault(key, text)
        self.line.setdefault(key, line)
        return key
