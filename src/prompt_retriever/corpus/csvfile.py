"""CSV: a hand-written RFC 4180 tokenizer that runs in linear time and survives stray quotes
(`csv_records`), the reader of a CSV corpus (`parse_csv`), and the cells of every CSV this toolkit writes,
neutralised against spreadsheet formulas (`csv_cell`, `csv_value`, `csv_text`)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .collector import Collector
from .lines import split_lines
from .records import REQUIRED_FIELDS, add_record, name_clash, same_names

# ----------------------------------------------------------------------------- cells

# What makes a spreadsheet read a CSV cell as a formula (OWASP, "CSV injection"): = + - @, a tab, a CR.
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CSV_ESCAPED_STARTS = (*CSV_FORMULA_STARTS, "'")


def csv_cell(value: str) -> str:
    """`value` as a CSV cell a spreadsheet shows as text and never runs as a formula: a value starting with
    one of `CSV_FORMULA_STARTS` gets a leading apostrophe (OWASP's advice), and so does one that already
    starts with an apostrophe followed by one of those or by another apostrophe, so that `csv_value` gives
    back exactly `value`. Every CSV this toolkit writes goes through it."""
    if value[:1] in CSV_FORMULA_STARTS or (value[:1] == "'" and value[1:2] in _CSV_ESCAPED_STARTS):
        return "'" + value
    return value


def csv_value(cell: str) -> str:
    """The value `csv_cell` wrote (a cell like `'=x` reads `=x`); any other cell as it is, so `'Tis` stays."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in _CSV_ESCAPED_STARTS else cell


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """CSV text (LF line ends) of `rows`, every string cell through `csv_cell`. A row with a CR in a cell is
    written with every cell quoted: the csv module quotes only the line terminator's characters, and a bare
    CR would end the record early for any reader."""
    buf = io.StringIO()
    plain = csv.writer(buf, lineterminator="\n")
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        cells = [csv_cell(c) if isinstance(c, str) else c for c in row]
        (quoted if any(isinstance(c, str) and "\r" in c for c in cells) else plain).writerow(cells)
    return buf.getvalue()


# ----------------------------------------------------------------------------- records


@dataclass
class CsvRecord:
    line: int  # first physical line
    last_line: int
    fields: list[str]
    error: str | None


_CSV_FIELD_END = re.compile(r"[,\n]")


def _next_line(text: str, pos: int, line: int) -> tuple[int, int]:
    """(position, number) of the line after the one holding `pos`, which is line `line`."""
    eol = text.find("\n", pos)
    return (len(text), line) if eol < 0 else (eol + 1, line + 1)


def csv_records(text: str) -> Iterator[CsvRecord]:
    """Split CSV text (RFC 4180, the `csv` module's default dialect) into records, in linear time.

    Records end at LF or CRLF outside quotes; a lone CR is content. A record with a quoting error
    (an unclosed quote, text after a closing quote) is yielded with `error` set, and reading resumes on
    the line after the one where the offending quoted field opened, so one stray quote cannot swallow
    the rest of the file."""
    pos, line, size = 0, 1, len(text)
    while pos < size:
        start_line = line
        fields: list[str] = []
        error: str | None = None
        resume: tuple[int, int] | None = None  # (position, line) to go on from after a quoting error
        while True:
            if text.startswith('"', pos):
                q_line = line
                chunks: list[str] = []
                p = pos + 1
                q = text.find('"', p)
                while q >= 0 and text.startswith('"', q + 1):  # "" is an escaped quote
                    chunks.append(text[p : q + 1])
                    p = q + 2
                    q = text.find('"', p)
                opened_at = pos
                if q < 0:
                    error = (
                        f"unclosed quote: field {len(fields) + 1} opens a quote on line {q_line} that is never "
                        f"closed; reading goes on with line {q_line + 1}"
                    )
                    resume = _next_line(text, opened_at, q_line)
                    break
                chunks.append(text[p:q])
                value = "".join(chunks)
                line += text.count("\n", pos, q)
                pos = q + 1
                if text.startswith("\r", pos) and (pos + 1 == size or text[pos + 1] == "\n"):
                    pos += 1
                if pos < size and text[pos] not in ",\n":
                    if line == q_line:
                        error = f"text after the closing quote of field {len(fields) + 1}"
                    else:
                        error = (
                            f"text after the closing quote of field {len(fields) + 1} (the quote opens on line "
                            f"{q_line} and closes on line {line}); reading goes on with line {q_line + 1}"
                        )
                        resume = _next_line(text, opened_at, q_line)
                        break
                    m = _CSV_FIELD_END.search(text, pos)
                    pos = size if m is None else m.start()
            else:
                m = _CSV_FIELD_END.search(text, pos)
                end = size if m is None else m.start()
                value = text[pos:end]
                if m is not None and value.endswith("\r"):  # the "\r" of "\r\n"
                    value = value[:-1]
                pos = end
            fields.append(value)
            if pos < size and text[pos] == ",":
                pos += 1
                continue
            break
        if resume is not None:
            yield CsvRecord(start_line, resume[1] - 1 if resume[0] < size else line, fields, error)
            pos, line = resume
            continue
        yield CsvRecord(start_line, line, fields, error)
        if pos < size:  # at the "\n" ending the record
            pos += 1
            line += 1


def parse_csv(path: Path, text: str, kind: str | None, c: Collector) -> None:
    where = str(path)
    records = iter(csv_records(text))
    first = next(records, None)
    if first is None:
        return
    if first.error:
        c.issue(where, 1, "error", f"unreadable CSV header: {first.error}")
        return
    header = [h.strip().lower() for h in first.fields]
    if clash := same_names(first.fields, lambda h: h.strip().lower()):
        c.issue(where, 1, "error", f"CSV header: {name_clash(clash, 'column')}; rename one")
        return
    missing = [k for k in REQUIRED_FIELDS if k not in header]
    if missing:
        c.issue(where, 1, "error", f"CSV header lacks column(s) {missing}; need id,genre,theme,title,text")
        return
    c.report.lines_read += len(split_lines(text))
    for rec in records:
        n = rec.line
        span = f" (the record spans lines {n}-{rec.last_line})" if rec.last_line > n else ""
        if rec.error:
            c.issue(where, n, "error", rec.error if "reading goes on" in rec.error else rec.error + span)
            continue
        blank = not any(cell.strip() for cell in rec.fields) and rec.last_line == n
        if blank and len(rec.fields) in (1, len(header)):  # an empty line, or a row of empty cells
            c.report.blank_lines += 1
            continue
        if len(rec.fields) != len(header):
            c.issue(where, n, "error", f"row has {len(rec.fields)} fields, header has {len(header)}{span}")
            continue
        add_record(path, n, dict(zip(header, map(csv_value, rec.fields), strict=True)), kind, c, span)
