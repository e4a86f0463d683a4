"""`import_golden`: a pairs or RAGAS file over a corpus, read into a `GoldenSet` with its report; and
`import_for_evaluation`, which saves it with every query in the test split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...corpus import Issue, Prompt, Severity
from ...errors import InputError
from ..goldenset import GoldenSet, Negative, Qrels, Query, make_query_id
from ..matching import MIN_CHARS, MIN_WORDS, PromptIndex
from .judgments import QueryJudgments
from .pairs import read_pairs
from .ragas import read_ragas
from .records import PAIRS_COLUMNS, RAGAS_COLUMNS, detect_import_format, read_records
from .report import GoldenImportError, ImportReport
from .undercount import undercount_warning

FORMATS = ("pairs", "ragas")


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

    def issue(line: int, severity: Severity, message: str) -> None:
        report.issues.append(Issue(str(p), line, severity, message))

    columns, records = read_records(p, report)
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
    judgments = QueryJudgments()
    query_kind = "imported" if fmt == "pairs" else "ragas"
    if fmt == "pairs":
        read_pairs(records, index, judgments, report, issue, skip_invalid)
    else:
        read_ragas(records, index, judgments, report, issue, skip_invalid)

    prompts = {pr.id: pr for pr in corpus}
    queries: list[Query] = []
    qrels: Qrels = {}
    negatives: list[Negative] = []
    by_key: dict[str, dict[str, int]] = {}
    for (key, pid), (grade, _) in judgments.judged.items():
        by_key.setdefault(key, {})[pid] = grade
    for key, text in judgments.text.items():
        judged = by_key.get(key, {})
        pos = {pid: g for pid, g in judged.items() if g > 0}
        if not pos:
            report.dropped_queries += 1
            why = "only judged negatives" if judged else "no judgment left"
            issue(judgments.line[key], "warning", f"query {text!r} has no relevant prompt ({why}); left out")
            continue
        qid = make_query_id(query_kind, text)
        source = next(iter(pos)) if len(pos) == 1 else None  # so `queries split` keeps it with its prompt
        queries.append(Query(qid, text, query_kind, source))
        qrels[qid] = dict(sorted(pos.items()))
        negatives.extend(Negative(qid, pid, "judged") for pid, g in sorted(judged.items()) if g == 0)
        report.positives += len(pos)
        report.multi_relevant += len(pos) > 1
        if warning := undercount_warning(text, len(pos), corpus):
            report.undercounting += 1
            only = prompts[next(iter(pos))].title
            issue(judgments.line[key], "warning", f"{warning} (judged: {only!r})")
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
