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

Modules: `records` (reading a file's records), `pairs` and `ragas` (the two readers), `judgments` (what they
collect), `undercount` (genre/theme queries judging one prompt), `report`, and `importer` (`import_golden`).
Matching contexts and chunks to prompts is `golden.matching`.
"""

from .importer import FORMATS, import_for_evaluation, import_golden
from .judgments import QueryJudgments
from .pairs import ContextRepairs, read_pairs, read_relevance, relevance_grade
from .ragas import context_list, read_ragas
from .records import (
    MAX_IMPORT_FILE_BYTES,
    PAIRS_COLUMNS,
    RAGAS_COLUMNS,
    Records,
    column_name,
    detect_import_format,
    read_import_text,
    read_records,
)
from .report import OVERCOUNT_MAX, GoldenImportError, ImportReport, IssueSink
from .undercount import UNDERCOUNT_MIN, undercount_warning

__all__ = [
    "FORMATS",
    "MAX_IMPORT_FILE_BYTES",
    "OVERCOUNT_MAX",
    "PAIRS_COLUMNS",
    "RAGAS_COLUMNS",
    "UNDERCOUNT_MIN",
    "ContextRepairs",
    "GoldenImportError",
    "ImportReport",
    "IssueSink",
    "QueryJudgments",
    "Records",
    "column_name",
    "context_list",
    "detect_import_format",
    "import_for_evaluation",
    "import_golden",
    "read_import_text",
    "read_pairs",
    "read_ragas",
    "read_records",
    "read_relevance",
    "relevance_grade",
    "undercount_warning",
]
