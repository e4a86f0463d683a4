"""Property-based tests of the corpus parser: arbitrary text and bytes never crash it, and every line
is accounted for (a prompt, a reported error, a blank line, or the second line of a record broken over
two lines, named by its warning). Only "\n" and "\r\n" end a line."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prompt_retriever.corpus import Prompt, make_prompt_id, read_corpus, title_key, write_corpus
from prompt_retriever.corpus import csv_records as _csv_records

FIELD = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="<>\x85"),
        min_size=1,
        max_size=40,
    )
    .map(lambda s: " ".join(s.split()))
    .filter(lambda s: s.strip() != "")
)
TEXT = FIELD.filter(lambda s: not s.lower().startswith("prompt") and not s.startswith(":"))
TAG_FIELD = FIELD.filter(lambda s: not s.startswith("/"))  # "</x>" would read as a closing tag
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

TAGGY = st.lists(
    st.sampled_from(
        [
            "<Horror>",
            "</Horror>",
            "<",
            ">",
            "</",
            " ",
            "prompt",
            "text",
            "&",
            "[x]",
            "(y)",
            "\t",
            "\r",
            "\ufeff",
            "\x00",
            "é",
            "<Grief> </Grief>",
            "<A </A>",
            "\n",
            "\r\n",
            "\u2028",
            "\x85",
            "\x0c",
            "<Adventure> </Adventure>",
            "<Courage> </Adventure>",
        ]
    ),
    max_size=30,
).map("".join)


def file_lines(text: str) -> list[str]:
    """The line model the parser promises, written out independently: only \\n and \\r\\n end a line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def joined_lines(report) -> set[int]:
    return {i.line for i in report.warnings if i.message.startswith("record broken over lines")}


def covered_lines(report) -> set[int]:
    """Lines a prompt or an issue stands for: its own line, the second line of a joined record, and the
    lines of a multi-line CSV record its message names."""
    out = {int(p.source.rsplit(":", 1)[1]) for p in report.prompts} | {i.line for i in report.errors}
    out |= joined_lines(report)
    for i in report.issues:
        if m := re.search(r"spans lines (\d+)-(\d+)", i.message):
            out |= set(range(int(m[1]), int(m[2]) + 1))
        if m := re.search(r"opens (?:a quote )?on line (\d+)", i.message):
            out |= set(range(i.line, int(m[1]) + 1))
    return out


def check_accounting(path: Path, report) -> None:
    lines = report.lines_read
    header = 1 if path.suffix == ".csv" and lines else 0
    assert len(covered_lines(report)) + report.blank_lines + header >= lines
    for issue in report.issues:
        assert issue.path == str(path)
        assert 0 <= issue.line <= max(lines, 1)
        assert issue.message


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(tmp_path, data):
    path = tmp_path / "fuzz.txt"
    path.write_bytes(data)
    report = read_corpus(path)
    check_accounting(path, report)


@SETTINGS
@given(text=st.lists(st.one_of(TAGGY, st.text(max_size=200)), max_size=20).map("\n".join))
def test_tag_soup_every_line_is_a_prompt_or_an_error(tmp_path, text):
    path = tmp_path / "soup.txt"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    report = read_corpus(path)
    lines = file_lines(text.encode("utf-8", "surrogatepass").decode("utf-8-sig", "replace"))
    assert report.lines_read == len(lines)
    nonblank = [n for n, line in enumerate(lines, 1) if line.strip() and "\x00" not in line]
    nul = [n for n, line in enumerate(lines, 1) if "\x00" in line]
    prompt_lines = {int(p.source.rsplit(":", 1)[1]) for p in report.prompts}
    error_lines = {i.line for i in report.errors}
    joined = joined_lines(report)
    assert set(nonblank) <= prompt_lines | error_lines | joined
    assert set(nul) <= error_lines
    assert not prompt_lines & error_lines
    assert not joined & (prompt_lines | error_lines)
    assert {n - 1 for n in joined} <= prompt_lines | error_lines  # the first line of a joined record


@SETTINGS
@given(text=st.text(max_size=300), suffix=st.sampled_from([".csv", ".jsonl"]))
def test_csv_and_jsonl_never_crash(tmp_path, text, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check_accounting(path, read_corpus(path))


def test_very_long_line_is_reported(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("<H> </H> <T> </T> <X> </X> prompt " + "word " * 5000 + "\n")
    report = read_corpus(path)
    assert report.errors and "longer than" in report.errors[0].message


rows = st.lists(
    st.tuples(TAG_FIELD, TAG_FIELD, TAG_FIELD, TEXT), min_size=1, max_size=8, unique_by=lambda r: title_key(r[2])
)


def test_unrepresentable_prompts_are_refused_not_written_wrong(tmp_path):
    import pytest

    for bad in (
        Prompt("a", "/x", "t", "T", "text"),
        Prompt("b", "g", "t", "T<1>", "text"),
        Prompt("c", "g", "t", "T", ": text"),
    ):
        with pytest.raises(ValueError, match="use .csv or .jsonl"):
            write_corpus([bad], tmp_path / "x.txt")
        write_corpus([bad], tmp_path / "x.jsonl")  # the structured formats take anything


@SETTINGS
@given(rows=rows, suffix=st.sampled_from([".txt", ".csv", ".jsonl"]))
def test_write_then_parse_round_trip(tmp_path, rows, suffix):
    prompts = [Prompt(f"id-{i}", g, t, title, text) for i, (g, t, title, text) in enumerate(rows)]
    path = write_corpus(prompts, tmp_path / f"round{suffix}")
    report = read_corpus(path)
    assert report.errors == [], report.errors
    got = [(p.genre, p.theme, p.title, p.text) for p in report.prompts]
    assert got == [(p.genre, p.theme, p.title, p.text) for p in prompts]


# ----------------------------------------------------------------------------- more properties

SEPARATOR = st.sampled_from(["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\r", "\x1c", "\x1d", "\x1e"])


@SETTINGS
@given(rows=rows, seps=st.lists(st.tuples(st.integers(0, 7), SEPARATOR), max_size=4))
def test_line_separators_never_split_or_shift_lines(tmp_path, rows, seps):
    lines = [f"<{g}> </{g}> <{t}> </{t}> <{title}> </{title}> prompt {text}" for g, t, title, text in rows]
    for i, sep in seps:  # a separator in the middle of the text of some line
        if i < len(lines):
            lines[i] = lines[i] + sep + "more words"
    path = tmp_path / "sep.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = read_corpus(path)
    assert report.errors == [] and report.lines_read == len(lines)
    assert [p.source for p in report.prompts] == [f"{path}:{n}" for n in range(1, len(lines) + 1)]
    broken = {i for i, _ in seps if i < len(lines)}
    assert {w.line - 1 for w in report.warnings if "only \\n and \\r\\n end a line" in w.message} == broken


@SETTINGS
@given(rows=rows, cuts=st.lists(st.integers(1, 3), min_size=8, max_size=8))
def test_records_broken_over_two_lines_are_joined(tmp_path, rows, cuts):
    """Breaking any record after its 1st, 2nd or 3rd tag pair changes nothing but a warning."""
    out, broken = [], []
    for (g, t, title, text), cut in zip(rows, cuts, strict=False):
        pairs = [f"<{g}> </{g}>", f"<{t}> </{t}>", f"<{title}> </{title}>"]
        if len(out) % 3 == 0:  # every other record whole, so heads never follow heads
            out.append(" ".join(pairs[:cut]))
            out.append(" ".join(pairs[cut:]) + f" prompt {text}")
            broken.append(len(out))
        else:
            out.append(" ".join(pairs) + f" prompt {text}")
    path = tmp_path / "broken.txt"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    report = read_corpus(path)
    assert report.errors == [], report.errors
    assert sorted(joined_lines(report)) == broken
    assert [p.id for p in report.prompts] == [make_prompt_id(*r) for r in rows]


@SETTINGS
@given(
    lines=st.lists(
        st.one_of(
            st.text(max_size=60),
            st.sampled_from(['{"genre": "H"}', "[", "{", '"', "\u2028", "null", "1e999", '{"text": "\u0000"}']),
            st.builds(
                lambda g, title, text: json.dumps({"genre": g, "theme": "T", "title": title, "text": text}),
                st.one_of(FIELD, st.lists(FIELD, max_size=2), st.integers()),
                FIELD,
                st.one_of(FIELD, st.none()),
            ),
        ),
        max_size=12,
    )
)
def test_jsonl_every_line_is_a_prompt_or_an_error(tmp_path, lines):
    text = "\n".join(lines)
    path = tmp_path / "fuzz.jsonl"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    report = read_corpus(path)
    physical = file_lines(text.encode("utf-8", "surrogatepass").decode("utf-8-sig", "replace"))
    assert report.lines_read == len(physical)
    nonblank = {n for n, line in enumerate(physical, 1) if line.strip()}
    prompt_lines = [int(p.source.rsplit(":", 1)[1]) for p in report.prompts]
    error_lines = {i.line for i in report.errors}
    assert nonblank == set(prompt_lines) | error_lines and not set(prompt_lines) & error_lines


CSV_CELL = st.one_of(
    FIELD,
    st.text(alphabet='ab ,"\n\r\u2028\x00', max_size=12),
    st.sampled_from(["", '"', '""', 'a"b', "x" * 6000]),
)


@SETTINGS
@given(
    records=st.lists(
        st.one_of(
            st.lists(CSV_CELL, min_size=5, max_size=5),  # written by csv.writer: always well-formed
            st.lists(CSV_CELL, min_size=1, max_size=7),
        ),
        max_size=10,
    ),
    raw=st.lists(st.tuples(st.integers(0, 9), st.text(alphabet='ab,"\r ', min_size=1, max_size=12)), max_size=3),
)
def test_csv_every_record_is_a_prompt_or_an_error(tmp_path, records, raw):
    """Every record's first line is a prompt, an error or blank, and no error hides later records: a
    hand-made line (stray quotes and all) spliced between well-formed records is reported on its own."""
    rows = []
    for rec in records:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(rec)
        rows.append(("csv", rec, buf.getvalue()))
    for at, line in raw:
        rows.insert(min(at, len(rows)), ("raw", None, line.replace('"', "") + "\n"))  # quote-free, one line
    text = "id,genre,theme,title,text\n" + "".join(r[2] for r in rows)
    path = tmp_path / "fuzz.csv"
    path.write_text(text, encoding="utf-8")
    report = read_corpus(path)
    check_accounting(path, report)
    starts, line = [], 2
    for _, _, chunk in rows:
        starts.append(line)
        line += chunk.count("\n")
    assert report.lines_read == len(file_lines(text))
    prompt_lines = [int(p.source.rsplit(":", 1)[1]) for p in report.prompts]
    covered = set(prompt_lines) | {i.line for i in report.errors}
    for (kind, rec, chunk), start in zip(rows, starts, strict=True):
        blank = all(not c.strip() for c in rec) if kind == "csv" else not chunk.strip(" \r\n,")
        assert start in covered or (blank and chunk.count(",") in (0, 4)), (start, chunk)
        if kind == "csv" and start in prompt_lines and len(rec) == 5:
            p = report.prompts[prompt_lines.index(start)]
            assert p.title == " ".join(rec[3].split())


ATOMS = [
    "<",
    ">",
    "</",
    "<H",
    "<H>",
    "</H>",
    " ",
    "prompt",
    '"',
    '""',
    ",",
    "[",
    "{",
    '{"a":',
    "\\",
    "\r",
    "\u2028",
    "x",
]


LONG = 200_000


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(st.tuples(st.sampled_from(ATOMS), st.integers(1, 70_000)), min_size=1, max_size=3),
    suffix=st.sampled_from([".txt", ".csv", ".jsonl"]),
)
def test_long_adversarial_lines_finish(tmp_path, parts, suffix):
    """Lines of 200k characters built to trip backtracking or recursion: a quadratic parser would
    take minutes on some of them. No timing assert: the test must simply finish, and account for the line."""
    pattern = "".join(atom * n for atom, n in parts)
    line = (pattern * (LONG // len(pattern) + 1))[:LONG]  # the pattern repeated to 200k characters
    good = {
        ".txt": "<H> </H> <G> </G> <Ok> </Ok> prompt fine",
        ".csv": ",H,G,Ok,fine",
        ".jsonl": json.dumps({"genre": "H", "theme": "G", "title": "Ok", "text": "fine"}),
    }[suffix]
    head = "id,genre,theme,title,text\n" if suffix == ".csv" else ""
    path = tmp_path / f"long{suffix}"
    path.write_text(head + line + "\n" + good + "\n", encoding="utf-8")
    report = read_corpus(path)
    check_accounting(path, report)
    assert any(p.title == "Ok" for p in report.prompts) or report.errors


@SETTINGS
@given(text=st.text(alphabet='ab ,"\n', max_size=80))
def test_csv_records_agree_with_the_csv_module(text):
    """On text the csv module reads without error (strict), records and fields are the same; only a lone
    CR, which the csv module takes for a line end, is read differently (as content)."""
    try:
        expected = [row for row in csv.reader(io.StringIO(text, newline=""), strict=True)]
    except csv.Error:
        return
    got = [r for r in _csv_records(text)]
    assert all(r.error is None for r in got)
    assert [r.fields for r in got] == [row or [""] for row in expected]  # csv gives [] for an empty line
