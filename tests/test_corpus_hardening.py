"""Hardening of the corpus parser: one line model for every format (B1), CSV problems reported per record
with reading going on (B2), linear time on adversarial input (B3), and the same field rules in .txt, .csv
and .jsonl (B4). "No line is dropped silently" is the promise each test holds the parser to."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.corpus import MAX_TEXT_CHARS, Prompt, read_corpus, split_lines, title_key, write_corpus

DATA = Path(__file__).parent / "data"
HEADER = "id,genre,theme,title,text\n"
GOOD_TXT = "<Horror> </Horror> <Grief> </Grief> <{title}> </{title}> prompt {text}"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8"))
    return p


def jline(**row):
    return json.dumps({"genre": "Horror", "theme": "Grief"} | row, ensure_ascii=False)


def csv_text(*rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "genre", "theme", "title", "text"])
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def lines_of(report):
    return [int(p.source.rsplit(":", 1)[1]) for p in report.prompts]


# ----------------------------------------------------------------------------- B1: one line model

# what str.splitlines breaks on besides \n and \r\n; none of them ends a line here
SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\r", "\x1c", "\x1d", "\x1e"]


def test_split_lines_breaks_only_on_lf_and_crlf():
    assert split_lines("a\u2028b\r\nc\rd\x0ce\n\nf") == ["a\u2028b", "c\rd\x0ce", "", "f"]
    assert split_lines("a\n") == ["a"] and split_lines("") == [] and split_lines("\r\n") == [""]


@pytest.mark.parametrize("sep", SEPARATORS)
def test_txt_separator_inside_a_line_is_a_space_with_a_warning(tmp_path, sep):
    text = GOOD_TXT.format(title="A", text=f"first half{sep}second half") + "\n"
    text += GOOD_TXT.format(title="B", text="next line") + "\n"
    report = read_corpus(write(tmp_path, "c.txt", text))
    assert report.errors == []
    assert report.lines_read == 2 and lines_of(report) == [1, 2]
    assert report.prompts[0].text == "first half second half"
    [w] = report.warnings
    assert w.line == 1 and "only \\n and \\r\\n end a line" in w.message and f"U+{ord(sep):04X}" in w.message


@pytest.mark.parametrize("sep", SEPARATORS)
def test_jsonl_separator_never_shifts_lines(tmp_path, sep):
    # json.dumps writes U+2028, U+2029 and U+0085 raw and escapes the control characters; either way
    # the value holds the character, read as a space with a warning
    text = jline(title="A", text=f"first half{sep}second half") + "\n" + jline(title="B", text="next") + "\n"
    report = read_corpus(write(tmp_path, "c.jsonl", text))
    assert report.lines_read == 2 and lines_of(report) == [1, 2]
    assert report.errors == [] and report.prompts[0].text == "first half second half"
    assert [w.line for w in report.warnings] == [1] and "line break" in report.warnings[0].message


@pytest.mark.parametrize("sep", ["\x0c", "\r", "\x0b", "\x1e"])
def test_jsonl_raw_control_character_is_an_error_on_its_own_line(tmp_path, sep):
    text = '{"genre": "Horror", "theme": "Grief", "title": "A", "text": "a' + sep + 'b"}\n' + jline(title="B", text="x")
    report = read_corpus(write(tmp_path, "c.jsonl", text))
    assert [(e.line, e.message[:12]) for e in report.errors] == [(1, "invalid JSON")]
    assert lines_of(report) == [2] and report.lines_read == 2


def test_escaped_newline_in_json_text_is_a_space_with_a_warning(tmp_path):
    report = read_corpus(write(tmp_path, "c.jsonl", jline(title="A", text="one\ntwo") + "\n"))
    assert report.prompts[0].text == "one two" and report.errors == []
    assert "line break" in report.warnings[0].message


# ----------------------------------------------------------------------------- B2: CSV keeps reading


def test_csv_lone_cr_is_content_and_later_rows_are_read(tmp_path):
    path = write(tmp_path, "s.csv", HEADER + ",Horror,Grief,A,ok a\n,Horror,Grief,B,bad \r cr\n,Horror,Grief,C,ok c\n")
    report = read_corpus(path)
    assert [p.title for p in report.prompts] == ["A", "B", "C"]
    assert report.prompts[1].text == "bad cr"
    assert report.errors == [] and [w.line for w in report.warnings] == [3]
    res = CliRunner().invoke(app, ["corpus", "validate", str(path)])
    assert "3 prompts, 0 errors, 1 warnings" in res.output.replace("\n", " ")


def test_csv_field_over_the_csv_module_limit_is_reported_and_reading_goes_on(tmp_path):
    big = "x" * 200_000
    path = write(tmp_path, "s.csv", HEADER + f",Horror,Grief,A,ok a\n,Horror,Grief,B,{big}\n,Horror,Grief,C,ok c\n")
    report = read_corpus(path)
    assert [p.title for p in report.prompts] == ["A", "C"]
    assert [(e.line, e.message) for e in report.errors] == [
        (3, f"prompt text is longer than {MAX_TEXT_CHARS} characters (200000)")
    ]


def test_csv_unclosed_quote_is_an_error_naming_its_line(tmp_path):
    path = DATA / "corpus_csv" / "unclosed_quote.csv"
    report = read_corpus(path)
    assert [p.title for p in report.prompts] == ["A", "C", "D"]
    assert lines_of(report) == [2, 4, 5]
    [e] = report.errors
    assert e.line == 3 and e.message.startswith("unclosed quote: field 5 opens a quote on line 3")
    res = CliRunner().invoke(app, ["corpus", "validate", str(path)])
    assert res.exit_code == 1
    assert f"{path}:3: error: unclosed quote" in res.output.replace("\n", "")


def test_csv_unclosed_quote_in_a_multiline_record(tmp_path):
    text = HEADER + ',Horror,"Gr\nief",A,"never closed\n,Horror,Grief,B,ok b\n'
    report = read_corpus(write(tmp_path, "s.csv", text))
    [e] = report.errors
    assert e.line == 2 and "opens a quote on line 3" in e.message
    assert [p.title for p in report.prompts] == ["B"] and lines_of(report) == [4]


def test_csv_text_after_a_closing_quote_is_an_error_and_reading_goes_on(tmp_path):
    text = HEADER + ',Horror,Grief,A,"quoted" then more\n,Horror,Grief,B,ok b\n'
    report = read_corpus(write(tmp_path, "s.csv", text))
    assert [(e.line, e.message) for e in report.errors] == [(2, "text after the closing quote of field 5")]
    assert [p.title for p in report.prompts] == ["B"]


def test_csv_multiline_record_reports_its_span(tmp_path):
    text = HEADER + ',Horror,Grief,A,"three\nline\ntext"\n,Horror,Grief,B,"x",extra\n,Horror,Grief,C,ok c\n'
    report = read_corpus(write(tmp_path, "s.csv", text))
    assert lines_of(report) == [2, 6]
    assert report.prompts[0].text == "three line text"
    assert [(w.line, "lines 2-4" in w.message) for w in report.warnings] == [(2, True)]
    assert [(e.line, e.message) for e in report.errors] == [(5, "row has 6 fields, header has 5")]
    assert report.lines_read == 6


def test_csv_every_record_is_a_prompt_or_an_error(tmp_path):
    rows = [
        ",Horror,Grief,A,ok",
        ',Horror,Grief,B,"unclosed',
        ",Horror,Grief,C,\x00nul",
        ",Horror,Grief,D",
        '"a"b,Horror,Grief,E,junk after quote',
        ",Horror,Grief,F,ok",
        ",Horror,Grief,G," + "y" * 6000,
        ",Horror,Grief,H,ok",
    ]
    report = read_corpus(write(tmp_path, "s.csv", HEADER + "\n".join(rows) + "\n"))
    assert [p.title for p in report.prompts] == ["A", "F", "H"]
    assert sorted(lines_of(report) + [e.line for e in report.errors]) == list(range(2, 10))


def test_csv_header_problems(tmp_path):
    report = read_corpus(write(tmp_path, "h.csv", '"id,genre,theme,title,text\n,a,b,c,d\n'))
    assert [e.line for e in report.errors] == [1] and "header" in report.errors[0].message


def test_csv_round_trip_of_awkward_fields(tmp_path):
    rows = [
        ["p1", "Horror", "Grief", 'He said "hi"', 'A "quoted", comma text'],
        ["p2", "Horror", "Grief", '"', 'ends with a quote"'],
        ["p3", "Horror", "Grief", "x,y", "  leading and trailing spaces  "],
    ]
    report = read_corpus(write(tmp_path, "r.csv", csv_text(*rows).replace("\n", "\r\n")))
    assert report.issues == []
    assert [(p.id, p.title, p.text) for p in report.prompts] == [
        ("p1", 'He said "hi"', 'A "quoted", comma text'),
        ("p2", '"', 'ends with a quote"'),
        ("p3", "x,y", "leading and trailing spaces"),
    ]


# ----------------------------------------------------------------------------- B3: linear time

N = 200_000  # a quadratic parser takes minutes on lines this long


def test_open_tag_without_gt_followed_by_spaces(tmp_path):
    report = read_corpus(write(tmp_path, "c.txt", "<Horror" + " " * N + "\n" + GOOD_TXT.format(title="A", text="t")))
    assert [e.line for e in report.errors] == [1] and lines_of(report) == [2]


def test_deeply_nested_json_is_an_error_on_its_line(tmp_path):
    text = "[" * 100_000 + "\n" + "{" * 100_000 + "\n" + jline(title="A", text="t") + "\n" + '{"title": ' + "9" * 5000
    report = read_corpus(write(tmp_path, "c.jsonl", text))
    assert [e.line for e in report.errors] == [1, 2, 4]
    assert all(e.message.startswith("invalid JSON") for e in report.errors)
    assert lines_of(report) == [3]


ADVERSARIAL_TXT = [
    "<Horror" + " " * N,
    "<" * N,
    "</" * (N // 2),
    "<a" * (N // 2),
    "<Horror>" + " " * N + "</Horror>",
    "<H> </H> <G> </G> <T" + " " * N + "</T> prompt x",
    "<H> </H> <G> </G> <T> </T> prompt " + "<a " * (N // 3),
    "<H> </H> <G> </G> <T> </T> prompt " + "</a" * (N // 3),
    "<H> </H>" * (N // 8),
    " " * N + "prompt",
    "<H> </H> <G> </G> <T> </T>" + " prompt" * (N // 7),
    "\u2028" * N + "x",
]
ADVERSARIAL_CSV = [
    '"a",' * (N // 4),
    '"a"b' * (N // 4),
    '"a\n' * 1000 + '"' + "b" * N,
    '"' * N,
    '"' + "a" * N,
    ('""' * (N // 2)),
    "," * N,
    '"a"' + "b" * N,
    "\r" * N + "x",
]
ADVERSARIAL_JSONL = ["[" * N, "{" * N, '"' + "\\" * N, '{"a":' * (N // 5), "[" * 1000 + "]" * 1000, "9" * N]


@pytest.mark.parametrize("line", ADVERSARIAL_TXT, ids=range(len(ADVERSARIAL_TXT)))
def test_long_adversarial_txt_lines_finish(tmp_path, line):
    text = line + "\n" + GOOD_TXT.format(title="Ok", text="fine") + "\n"
    report = read_corpus(write(tmp_path, "c.txt", text))
    assert report.lines_read == 2 and 2 in lines_of(report)
    assert 1 in {e.line for e in report.errors} | set(lines_of(report))


@pytest.mark.parametrize("line", ADVERSARIAL_CSV, ids=range(len(ADVERSARIAL_CSV)))
def test_long_adversarial_csv_records_finish(tmp_path, line):
    report = read_corpus(write(tmp_path, "c.csv", HEADER + line + "\n,Horror,Grief,Ok,fine\n"))
    assert report.errors and report.errors[0].line == 2
    assert lines_of(report)[-1] == line.count("\n") + 3


@pytest.mark.parametrize("line", ADVERSARIAL_JSONL, ids=range(len(ADVERSARIAL_JSONL)))
def test_long_adversarial_jsonl_lines_finish(tmp_path, line):
    report = read_corpus(write(tmp_path, "c.jsonl", line + "\n" + jline(title="Ok", text="fine") + "\n"))
    assert [e.line for e in report.errors] == [1] and lines_of(report) == [2]


# ----------------------------------------------------------------------------- B4: same field rules


def record(fmt, title="T", text="Some text.", genre="Horror", id_=""):
    if fmt == "txt":
        return f"<{genre}> </{genre}> <Grief> </Grief> <{title}> </{title}> prompt {text}\n"
    if fmt == "csv":
        return csv_text([id_, genre, "Grief", title, text])
    return json.dumps({"id": id_, "genre": genre, "theme": "Grief", "title": title, "text": text}) + "\n"


@pytest.mark.parametrize("fmt", ["txt", "csv", "jsonl"])
@pytest.mark.parametrize(
    "fields, error",
    [
        ({"text": "word " * 2_000_000}, f"longer than {MAX_TEXT_CHARS} characters"),  # 10 MB
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, f"longer than {MAX_TEXT_CHARS} characters"),
        ({"title": "T" * 201}, "longer than 200 characters"),
        ({"text": "a\x00b"}, "NUL byte"),
        ({"title": "a\x00b"}, "NUL byte"),
        ({"genre": ""}, "empty"),
    ],
)
def test_same_field_rules_in_every_format(tmp_path, fmt, fields, error):
    report = read_corpus(write(tmp_path, f"c.{fmt}", record(fmt, **fields)))
    assert report.prompts == []
    assert [e.line for e in report.errors] == [2 if fmt == "csv" else 1]
    assert error in report.errors[0].message, report.errors


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "a" * 300, "-x", ".hidden", "a b", "a/b", "é", "a\\b", "C:x", "a%2Fb"]
)
def test_unsafe_ids_are_errors(tmp_path, fmt, bad):
    report = read_corpus(write(tmp_path, f"c.{fmt}", record(fmt, id_=bad)))
    assert report.prompts == [] and len(report.errors) == 1
    assert "invalid id" in report.errors[0].message
    assert len(str(report.errors[0])) < 300  # a long id is shortened in the message


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize(
    "good", [" Bad_ID.x ", "Bad_ID.x", "p1", "a" * 120, "0", "the-keeper-s-last-log-1a2b3c4d", "A.B-C_D"]
)
def test_safe_ids_are_kept(tmp_path, fmt, good):
    report = read_corpus(write(tmp_path, f"c.{fmt}", record(fmt, id_=good)))
    assert report.issues == [] and report.prompts[0].id == good.strip()  # surrounding spaces are dropped


@pytest.mark.parametrize(
    "row, message",
    [
        ({"genre": ["Horror"]}, "field genre must be a string, got list"),
        ({"title": 1984}, "field title must be a string, got int"),
        ({"text": {"a": 1}}, "field text must be a string, got dict"),
        ({"text": True}, "field text must be a string, got bool"),
        ({"id": 7}, "field id must be a string, got int"),
        ({"kind": ["fiction"]}, "field kind must be a string, got list"),
    ],
)
def test_json_fields_must_be_strings(tmp_path, row, message):
    base = {"genre": "Horror", "theme": "Grief", "title": "T", "text": "Some text."}
    report = read_corpus(write(tmp_path, "c.jsonl", json.dumps(base | row) + "\n"))
    assert report.prompts == [] and [e.message for e in report.errors] == [message]


def test_json_null_id_and_kind_are_absent(tmp_path):
    row = {"id": None, "genre": "Horror", "theme": "Grief", "title": "T", "text": "x", "kind": None}
    report = read_corpus(write(tmp_path, "fiction.jsonl", json.dumps(row)))
    assert report.issues == [] and report.prompts[0].kind == "fiction" and report.prompts[0].id.startswith("t-")


VARIANTS = ["The\u200b Lamp", "The La\u200dmp", "\ufeffThe Lamp", "Ｔｈｅ Ｌａｍｐ", "THE\u00a0LAMP", "The La\u00admp"]


@pytest.mark.parametrize("fmt", ["txt", "csv", "jsonl"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_invisible_and_full_width_title_variants_are_duplicates(tmp_path, fmt, variant):
    if fmt == "csv":
        text = csv_text(["", "Horror", "Grief", "The Lamp", "One."], ["", "Horror", "Grief", variant, "Two."])
    else:
        text = record(fmt, title="The Lamp", text="One.") + record(fmt, title=variant, text="Two.")
    report = read_corpus(write(tmp_path, f"c.{fmt}", text))
    assert [p.title for p in report.prompts] == ["The Lamp"]
    assert len(report.errors) == 1 and "duplicate title" in report.errors[0].message


def test_title_key():
    assert title_key("Ｔｈｅ\u200b  Ｌａｍｐ") == title_key("the lamp") == "the lamp"
    assert title_key("Straße") == title_key("STRASSE")
    assert title_key("A Lamp") != title_key("A Lamp!")


def test_bundled_titles_are_distinct_under_the_new_key():
    from prompt_retriever.corpus import bundled_corpus_paths

    report = read_corpus(bundled_corpus_paths())
    assert len({title_key(p.title) for p in report.prompts}) == len(report.prompts)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_write_corpus_refuses_an_id_it_could_not_read_back(tmp_path, suffix):
    with pytest.raises(ValueError, match="invalid id '../x'"):
        write_corpus([Prompt("../x", "Horror", "Grief", "T", "text")], tmp_path / f"out{suffix}")
    assert not (tmp_path / f"out{suffix}").exists()
    write_corpus([Prompt("../x", "Horror", "Grief", "T", "text")], tmp_path / "out.txt")  # ids are not stored
