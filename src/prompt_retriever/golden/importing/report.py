"""The report of an import: what was read, kept, dropped and flagged (`ImportReport`), and the error raised
when an import has errors (`GoldenImportError`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...corpus import Issue, IssueReport, Severity
from ...errors import InputError

# A RAGAS question is flagged when its reference chunks make more prompts relevant than this: more than the
# cutoff of the headline metrics (@10), so any 10 of them score a perfect P@10 and NDCG@10 although the
# question asks about one story. Specific questions judge a few prompts (like the hand-judged natural
# queries); a chunk holding dozens of prompts is a slice of the file, not a judgment.
OVERCOUNT_MAX = 10

# How the readers report a problem: (line, severity, message), the file being the import's.
IssueSink = Callable[[int, Severity, str], None]


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
