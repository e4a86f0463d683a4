"""What reading a corpus reports: `Issue`s (FILE:LINE: severity: message), the reports that hold them, and
how repairs are listed.

Every line of an input file ends up either as a `Prompt` or as an `Issue`; `CorpusReport` holds both, and
`IssueReport` is what it shares with the golden-set import report. A warning that says a line was
repaired has a repair type (`REPAIR_TYPES`), by which long listings are shortened.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from ..errors import PromptRetrieverError
from .prompt import Prompt

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    path: str
    line: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"


# The warnings that say a line was repaired, by type: (type, what a count of them is, the message pattern).
REPAIR_TYPES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("joined", "records broken over two lines, joined", re.compile(r"\brecord broken over lines \d+ and \d+")),
    ("genre-name", "tags closed with the genre's name", re.compile(r"\bis closed by </[^>]*>, the genre's name")),
    ("missing-gt", "tags missing their '>'", re.compile(r"\bis missing its '>'")),
    ("keyword", "texts without the 'prompt' keyword", re.compile(r"\bmissing 'prompt' keyword")),
    ("line-break", "lines with line-break characters read as spaces", re.compile(r"\bline break(?:\(s\)| char)")),
    ("utf-8", "lines with undecodable bytes replaced", re.compile(r"\bnot valid UTF-8\b.*replaced")),
)
SHOWN_PER_TYPE = 3  # repairs of one type listed without --verbose


def repair_type(issue: Issue) -> str | None:
    """The type of repair a warning reports (see `REPAIR_TYPES`), or None."""
    return next((name for name, _, pattern in REPAIR_TYPES if pattern.search(issue.message)), None)


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

    def listing(self, verbose: bool = False, first: int = SHOWN_PER_TYPE) -> IssueListing:
        """What to print: every error and every warning that is not a repair, in order, but of each type of
        repair (`REPAIR_TYPES`) only the first `first`, and a summary line counting each type by which some
        were held back. `verbose`: every issue, no summary."""
        if verbose:
            return IssueListing(list(self.issues), [])
        seen: Counter[str] = Counter()
        shown: list[Issue] = []
        for issue in self.issues:
            repair = repair_type(issue) if issue.severity == "warning" else None
            if repair is not None:
                seen[repair] += 1
                if seen[repair] > first:
                    continue
            shown.append(issue)
        if all(n <= first for n in seen.values()):
            return IssueListing(shown, [])
        counts = "; ".join(
            f"{seen[name]} {label}" + (f" (first {first} listed)" if seen[name] > first else "")
            for name, label, _ in REPAIR_TYPES
            if seen[name]
        )
        return IssueListing(shown, [f"repairs by kind: {counts}; --verbose lists every one"])


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
