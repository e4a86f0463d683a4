"""Repairs the tagged-line parser makes with a warning: a pair closed with the genre's name (A1), and a
record broken over two lines (A2). Anything still ambiguous stays an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from prompt_retriever.corpus import (
    format_tagged_line,
    make_prompt_id,
    parse_record_half,
    parse_tagged_line,
    read_corpus,
)

DATA = Path(__file__).parent / "data"
KNIGHT = (
    "<Adventure> </Adventure> <Courage> </Adventure> <The Smallest Knight> </The Smallest Knight> "
    "prompt In a kingdom of giants, the smallest knight is sent to parley."
)


def write(tmp_path, text, name="c.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def accounted(report, text):
    """Every non-blank line is a prompt's line, an error's line, or the second line of a joined record."""
    lines = text.split("\n")
    nonblank = {n for n, line in enumerate(lines, 1) if line.strip()}
    prompt_lines = {int(p.source.rsplit(":", 1)[1]) for p in report.prompts}
    error_lines = {i.line for i in report.errors}
    joined = {i.line for i in report.warnings if i.message.startswith("record broken over lines")}
    assert not prompt_lines & error_lines
    return prompt_lines | error_lines | joined >= nonblank


# ----------------------------------------------------------------------------- A1: closed with the genre


def test_theme_closed_with_the_genre_name_is_repaired():
    res = parse_tagged_line(KNIGHT)
    assert res.errors == []
    assert res.values == {"genre": "Adventure", "theme": "Courage", "title": "The Smallest Knight"}
    assert res.warnings == [
        "theme tag <Courage> is closed by </Adventure>, the genre's name; read as <Courage> </Courage>"
    ]


def test_title_closed_with_the_genre_name_is_repaired():
    res = parse_tagged_line("<Horror> </Horror> <Grief> </Grief> <The Lamp> </horror> prompt A lamp turns on.")
    assert res.errors == []
    assert res.values["title"] == "The Lamp"
    assert len(res.warnings) == 1 and "the genre's name" in res.warnings[0]


@pytest.mark.parametrize(
    "line, error",
    [
        # the genre pair itself: nothing to repair it from
        (
            "<Discovery> </Adventure> <Hope> </Hope> <T> </T> prompt text here",
            "genre closing tag </Adventure> does not match its opening tag <Discovery>",
        ),
        # a theme closed with some other name
        (
            "<Adventure> </Adventure> <Courage> </Hope> <T> </T> prompt text here",
            "theme closing tag </Hope> does not match its opening tag <Courage>",
        ),
        # the title closed with the theme's name (only the genre's name is a known slip)
        (
            "<Adventure> </Adventure> <Courage> </Courage> <T> </Courage> prompt text here",
            "title closing tag </Courage> does not match its opening tag <T>",
        ),
        # a theme closed with the genre's name when the genre pair is itself broken
        (
            "<Discovery> </Adventure> <Courage> </Adventure> <T> </T> prompt text here",
            "genre closing tag </Adventure> does not match its opening tag <Discovery>",
        ),
        # two repairs on one pair (missing '>' and the genre's name) are too many
        (
            "<Adventure> </Adventure> <Courage </Adventure> <T> </T> prompt text here",
            "theme closing tag </Adventure> does not match its opening tag <Courage>",
        ),
    ],
)
def test_other_mismatches_stay_errors(line, error):
    res = parse_tagged_line(line)
    assert res.values is None
    assert error in res.errors


def test_genre_name_repair_in_a_file_is_a_located_warning(tmp_path):
    path = write(tmp_path, KNIGHT + "\n")
    report = read_corpus(path)
    assert report.errors == []
    assert [str(i) for i in report.warnings] == [
        f"{path}:1: warning: theme tag <Courage> is closed by </Adventure>, the genre's name; "
        "read as <Courage> </Courage>"
    ]
    assert report.prompts[0].theme == "Courage"


# ----------------------------------------------------------------------------- A2: broken over two lines

HEADS_AND_TAILS = [
    ("<Horror> </Horror> <Grief> </Grief>", "<The Lamp> </The Lamp> prompt A lamp turns on by itself."),
    ("<Horror> </Horror>", "<Grief> </Grief> <The Lamp> </The Lamp> prompt A lamp turns on by itself."),
    ("<Horror> </Horror> <Grief> </Grief> <The Lamp> </The Lamp>", "prompt A lamp turns on by itself."),
    ("  <Horror></Horror><Grief></Grief>  ", "  <The Lamp></The Lamp>   prompt:  A lamp turns on by itself.  "),
]


@pytest.mark.parametrize("head, tail", HEADS_AND_TAILS)
def test_record_broken_over_two_lines_is_joined(tmp_path, head, tail):
    text = f"{head}\r\n{tail}\r\n"
    path = write(tmp_path, text)
    report = read_corpus(path)
    assert report.errors == []
    assert [(i.line, i.message) for i in report.warnings] == [
        (2, "record broken over lines 1 and 2 (line 1 has only tag pairs); joined into one prompt")
    ]
    [p] = report.prompts
    assert (p.genre, p.theme, p.title, p.text) == ("Horror", "Grief", "The Lamp", "A lamp turns on by itself.")
    assert p.source == f"{path}:1"
    assert p.id == make_prompt_id("Horror", "Grief", "The Lamp", "A lamp turns on by itself.")
    assert report.lines_read == 2 and accounted(report, text)


def test_joined_record_in_the_middle_of_a_file(tmp_path):
    path = DATA / "corpus_repairs" / "repairs.txt"
    report = read_corpus(path)
    assert [(i.line, i.severity) for i in report.issues] == [(1, "warning"), (3, "warning"), (4, "error")]
    assert "lines 2 and 3" in report.issues[1].message
    assert [p.title for p in report.prompts] == ["The Smallest Knight", "The Keeper's Last Log", "The Locked Drawer"]
    assert [p.source.rsplit(":", 1)[1] for p in report.prompts] == ["1", "2", "5"]
    assert accounted(report, path.read_text())


def test_joined_records_are_listed_with_their_two_lines(tmp_path):
    path = DATA / "corpus_repairs" / "repairs.txt"
    report = read_corpus(path)
    [joined] = report.joined
    log = report.prompts[1]
    assert (joined.prompt_id, joined.line, joined.where()) == (log.id, 2, f"lines 2 and 3 of {path}")
    head, tail = parse_record_half(joined.head), parse_record_half(joined.tail)
    assert head is not None and head.head and head.describe() == "the genre and theme pairs" and head.fits(log)
    assert tail is not None and not tail.head and tail.describe() == "the title pair and the text"
    assert tail.fits(log) and not tail.fits(report.prompts[0])
    assert parse_record_half(format_tagged_line(log)) is None  # a whole record is neither half
    one = parse_record_half("<Grief> </Grief> <T> </T> prompt A lamp.")
    assert one is not None and one.describe() == "the theme and title pairs and the text"


GENRE_THEME = "<Horror> </Horror> <Grief> </Grief>"


@pytest.mark.parametrize(
    "text, error_lines",
    [
        # the next line is a whole record of its own: the first line stays an error
        (f"{GENRE_THEME}\n<Horror> </Horror> <Grief> </Grief> <T> </T> prompt Whole.\n", [1]),
        # the continuation has the title pair but no 'prompt' keyword
        (f"{GENRE_THEME}\n<T> </T> A lamp turns on.\n", [1, 2]),
        # the continuation has too many pairs
        (f"{GENRE_THEME}\n<Hope> </Hope> <T> </T> prompt A lamp.\n", [1, 2]),
        # the continuation has too few pairs
        ("<Horror> </Horror>\n<T> </T> prompt A lamp.\n", [1, 2]),
        # a blank line in between
        (f"{GENRE_THEME}\n\n<T> </T> prompt A lamp.\n", [1, 3]),
        # broken over three lines
        ("<Horror> </Horror>\n<Grief> </Grief>\n<T> </T> prompt A lamp.\n", [1, 2, 3]),
        # two head lines in a row: which one the continuation belongs to is a guess
        ("<Horror> </Horror>\n<Hope> </Hope> <Grief> </Grief>\n<T> </T> prompt A lamp.\n", [1, 2, 3]),
        # a head line at the end of the file
        (f"{GENRE_THEME}\n", [1]),
        # a broken pair on the first line
        ("<Horror> </Adventure> <Grief> </Grief>\n<T> </T> prompt A lamp.\n", [1, 2]),
        # a NUL byte in the continuation
        (f"{GENRE_THEME}\n<T> </T> prompt A \x00lamp.\n", [1, 2]),
        # the first line has text
        ("<Horror> </Horror> <Grief> </Grief> prompt A lamp.\n<T> </T> prompt More.\n", [1, 2]),
    ],
)
def test_ambiguous_breaks_stay_errors(tmp_path, text, error_lines):
    report = read_corpus(write(tmp_path, text))
    assert sorted({i.line for i in report.errors}) == error_lines
    assert not any(i.message.startswith("record broken") for i in report.issues)
    assert accounted(report, text)


def test_joined_record_is_checked_like_any_other(tmp_path):
    text = (
        "<Horror> </Horror> <Grief> </Grief> <The Lamp> </The Lamp> prompt First.\n"
        f"{GENRE_THEME}\n<The Lamp> </The Lamp> prompt Second.\n"
    )
    report = read_corpus(write(tmp_path, text))
    assert [(i.line, i.severity) for i in report.issues] == [(2, "error"), (3, "warning")]
    assert "duplicate title 'The Lamp'" in report.issues[0].message
