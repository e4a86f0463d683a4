"""The prompt corpus: the `Prompt` record, parsers for the tagged-line, CSV and JSONL formats, and stats.

Tagged-line format, one prompt per line::

    <Genre> </Genre> <Theme> </Theme> <Title> </Title> prompt TEXT

Every line of an input file ends up either as a `Prompt` or as an `Issue` naming the file, the line
and the problem; nothing is dropped silently. Blank lines are counted, not reported. In every format
only LF and CRLF end a line (`split_lines`); every format obeys the same field rules (strings,
not empty, no NUL, length caps, safe ids, duplicates compared by `title_key`); and every parser runs
in linear time on any input.

Modules: `prompt` (the record, ids, titles), `issues` (issues and reports), `lines`, `collector`,
`tagged`, `csvfile` (the RFC 4180 tokenizer and CSV cells), `jsonl` (and duplicate-key JSON), `records`
(the field rules of a CSV row or JSON object), `reader`, `writer`, `stats`, `queries` (the query rule).
"""

from .collector import Collector, kind_from_file_name
from .csvfile import CSV_FORMULA_STARTS, CsvRecord, csv_cell, csv_records, csv_text, csv_value, parse_csv
from .issues import (
    REPAIR_TYPES,
    SHOWN_PER_TYPE,
    CorpusError,
    CorpusReport,
    Issue,
    IssueListing,
    IssueReport,
    JoinedRecord,
    Severity,
    repair_type,
)
from .jsonl import DuplicateKeyError, loads_unique, parse_jsonl
from .lines import describe_breaks, split_lines
from .prompt import (
    ID_PATTERN,
    ID_RE,
    ID_RULE,
    MAX_FIELD_CHARS,
    MAX_TEXT_CHARS,
    Prompt,
    collapse_spaces,
    corpus_fingerprint,
    id_problem,
    make_prompt_id,
    slugify,
    title_key,
)
from .queries import INVISIBLE_CHARS, QUERY_PATTERN, check_query, query_problem
from .reader import (
    MAX_CORPUS_FILE_BYTES,
    bundled_corpus_paths,
    decode_utf8,
    detect_format,
    load_corpus,
    read_corpus,
    read_corpus_bytes,
    read_corpus_text,
    read_file_bytes,
)
from .records import add_record, name_clash, same_names
from .stats import CorpusStats, corpus_stats
from .tagged import (
    KEYWORD,
    RecordHalf,
    TaggedLine,
    format_tagged_line,
    parse_record_half,
    parse_tagged,
    parse_tagged_line,
    strip_keyword,
)
from .writer import write_corpus

__all__ = [
    "CSV_FORMULA_STARTS",
    "ID_PATTERN",
    "ID_RE",
    "ID_RULE",
    "INVISIBLE_CHARS",
    "KEYWORD",
    "MAX_CORPUS_FILE_BYTES",
    "MAX_FIELD_CHARS",
    "MAX_TEXT_CHARS",
    "QUERY_PATTERN",
    "REPAIR_TYPES",
    "SHOWN_PER_TYPE",
    "Collector",
    "CorpusError",
    "CorpusReport",
    "CorpusStats",
    "CsvRecord",
    "DuplicateKeyError",
    "Issue",
    "IssueListing",
    "IssueReport",
    "JoinedRecord",
    "Prompt",
    "RecordHalf",
    "Severity",
    "TaggedLine",
    "add_record",
    "bundled_corpus_paths",
    "check_query",
    "collapse_spaces",
    "corpus_fingerprint",
    "corpus_stats",
    "csv_cell",
    "csv_records",
    "csv_text",
    "csv_value",
    "decode_utf8",
    "describe_breaks",
    "detect_format",
    "format_tagged_line",
    "id_problem",
    "kind_from_file_name",
    "load_corpus",
    "loads_unique",
    "make_prompt_id",
    "name_clash",
    "parse_csv",
    "parse_jsonl",
    "parse_record_half",
    "parse_tagged",
    "parse_tagged_line",
    "query_problem",
    "read_corpus",
    "read_corpus_bytes",
    "read_corpus_text",
    "read_file_bytes",
    "repair_type",
    "same_names",
    "slugify",
    "split_lines",
    "strip_keyword",
    "title_key",
    "write_corpus",
]
