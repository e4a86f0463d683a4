from __future__ import annotations

import json

import pytest

from prompt_retriever.corpus import (
    CorpusError,
    Prompt,
    corpus_stats,
    format_tagged_line,
    load_corpus,
    make_prompt_id,
    parse_tagged_line,
    read_corpus,
    write_corpus,
)

GOOD = "<Horror> </Horror> <Grief> </Grief> <The Lamp> </The Lamp> prompt A keeper's lamp turns on by itself."


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_good_line_parses():
    res = parse_tagged_line(GOOD)
    assert res.errors == [] and res.warnings == []
    assert res.values == {"genre": "Horror", "theme": "Grief", "title": "The Lamp"}
    assert res.text == "A keeper's lamp turns on by itself."


@pytest.mark.parametrize(
    "title",
    ["Salt & Pepper", "The Keeper's Log", "Who Stopped the Clock (1923)", "Night Ferry [Piraeus]", "Q: Why?"],
)
def test_titles_with_punctuation(title):
    res = parse_tagged_line(f"<Mystery> </Mystery> <Secrets> </Secrets> <{title}> </{title}> prompt Some text here.")
    assert res.errors == []
    assert res.values["title"] == title


def test_extra_spaces_are_normalised():
    line = "  <Horror>   </Horror>  <Grief>  </Grief><The   Lamp>   </The   Lamp>   prompt    A  lamp   turns on.  "
    res = parse_tagged_line(line)
    assert res.errors == []
    assert res.values == {"genre": "Horror", "theme": "Grief", "title": "The Lamp"}
    assert res.text == "A lamp turns on."


def test_mismatched_closing_tag_is_an_error():
    res = parse_tagged_line("<Discovery> </Adventure> <Hope> </Hope> <T> </T> prompt text here")
    assert res.values is None
    assert res.errors == ["genre closing tag </Adventure> does not match its opening tag <Discovery>"]


def test_title_missing_gt_is_repaired_with_warning():
    res = parse_tagged_line("<Horror> </Horror> <Grief> </Grief> <The Lamp </The Lamp> prompt A lamp turns on.")
    assert res.errors == []
    assert res.values["title"] == "The Lamp"
    assert any("missing its '>'" in w for w in res.warnings)


def test_missing_prompt_keyword_is_a_warning():
    res = parse_tagged_line("<Horror> </Horror> <Grief> </Grief> <The Lamp> </The Lamp> A lamp turns on.")
    assert res.errors == []
    assert res.text == "A lamp turns on."
    assert res.warnings == ["missing 'prompt' keyword before the text; text taken after the title tag"]


@pytest.mark.parametrize("tail", ["prompt", "prompt   ", "", "prompt :"])
def test_missing_or_empty_text_is_an_error(tail):
    res = parse_tagged_line(f"<Horror> </Horror> <Grief> </Grief> <The Lamp> </The Lamp> {tail}")
    assert res.values is None
    assert res.errors == ["missing prompt text"]


def test_too_few_tags():
    res = parse_tagged_line("<Horror> </Horror> prompt A lamp turns on.")
    assert res.values is None
    assert "found 1 tag pair(s)" in res.errors[0]


def test_file_report_names_file_line_and_problem(tmp_path):
    text = "\n".join(
        [
            GOOD,
            "",
            "<Discovery> </Adventure> <Hope> </Hope> <Map> </Map> prompt An old map.",
            "<Horror> </Horror> <Grief> </Grief> <The Lamp> </The Lamp> prompt A different text entirely.",
            "<Horror> </Horror> <Grief> </Grief> <Empty> </Empty> prompt",
            "<Fantasy> </Fantasy> <Magic> </Magic> <No Keyword> </No Keyword> Wizards keep bees.",
            "just some words",
        ]
    )
    path = write(tmp_path, "bad.txt", text + "\n")
    report = read_corpus(path)
    got = [(i.line, i.severity) for i in report.issues]
    assert got == [(3, "error"), (4, "error"), (5, "error"), (6, "warning"), (7, "error")]
    assert all(i.path == str(path) for i in report.issues)
    assert "duplicate title 'The Lamp' (first at" in report.issues[1].message
    assert f"{path}:1" in report.issues[1].message
    assert [p.title for p in report.prompts] == ["The Lamp", "No Keyword"]
    assert report.blank_lines == 1 and report.lines_read == 7
    # nothing silently dropped: every non-blank line is a prompt or an error
    assert len(report.prompts) + len(report.errors) == report.lines_read - report.blank_lines


def test_load_raises_unless_skip_invalid(tmp_path):
    path = write(tmp_path, "bad.txt", GOOD + "\n<A> </B> <C> </C> <D> </D> prompt x y z\n")
    with pytest.raises(CorpusError) as exc:
        load_corpus(path)
    assert f"{path}:2" in str(exc.value)
    assert exc.value.report.errors[0].line == 2
    prompts = load_corpus(path, skip_invalid=True)
    assert len(prompts) == 1


def test_ids_are_stable_under_reordering_and_unique(tmp_path):
    lines = [
        "<Horror> </Horror> <Grief> </Grief> <A Lamp> </A Lamp> prompt One text.",
        "<Horror> </Horror> <Grief> </Grief> <A Lamp!> </A Lamp!> prompt Another text.",
        "<Romance> </Romance> <Hope> </Hope> <B> </B> prompt Third text.",
    ]
    a = load_corpus(write(tmp_path, "a.txt", "\n".join(lines)))
    b = load_corpus(write(tmp_path, "b.txt", "\n".join(reversed(lines))))
    assert {p.id for p in a} == {p.id for p in b}
    assert len({p.id for p in a}) == 3  # "A Lamp" and "A Lamp!" share a slug, not an id
    assert a[0].id.startswith("a-lamp-")
    assert a[0].id == make_prompt_id("Horror", "Grief", "A Lamp", "One text.")


def test_kind_is_inferred_from_file_name(tmp_path):
    p = load_corpus(write(tmp_path, "my_nonfiction.txt", GOOD))
    assert p[0].kind == "nonfiction"
    p = load_corpus(write(tmp_path, "fiction.txt", GOOD))
    assert p[0].kind == "fiction"


def test_csv_and_jsonl(tmp_path):
    csv_text = (
        "id,genre,theme,title,text\n"
        'p1,Horror,Grief,The Lamp,"A lamp, lit by nobody."\n'
        "\n"
        "p2,Romance,Hope,,missing title\n"
        "p3,Romance,Hope,Too,Many,Fields\n"
        ',Fantasy,Magic,Bees,"Wizards keep\nbees."\n'
    )
    report = read_corpus(write(tmp_path, "c.csv", csv_text))
    assert [p.id for p in report.prompts][0] == "p1"
    assert report.prompts[0].text == "A lamp, lit by nobody."
    assert report.prompts[1].text == "Wizards keep bees."
    assert report.prompts[1].source.endswith(":6")
    assert [(i.line, i.message) for i in report.errors] == [
        (4, "missing or empty field(s): title"),
        (5, "row has 6 fields, header has 5"),
    ]
    jsonl = "\n".join(
        [
            json.dumps({"genre": "Horror", "theme": "Grief", "title": "T1", "text": "Some text."}),
            "{not json",
            json.dumps([1, 2]),
            json.dumps({"genre": "Horror", "theme": "", "title": "T2", "text": "x"}),
        ]
    )
    report = read_corpus(write(tmp_path, "c.jsonl", jsonl))
    assert len(report.prompts) == 1
    assert [i.line for i in report.errors] == [2, 3, 4]
    assert "invalid JSON" in report.errors[0].message


def test_csv_missing_column(tmp_path):
    report = read_corpus(write(tmp_path, "c.csv", "id,genre,title,text\n1,a,b,c\n"))
    assert report.errors[0].line == 1 and "theme" in report.errors[0].message


def test_unreadable_and_non_utf8_files(tmp_path):
    report = read_corpus(tmp_path / "nope.txt")
    assert report.errors and "cannot read file" in report.errors[0].message
    p = tmp_path / "latin1.txt"
    p.write_bytes(GOOD.replace("keeper", "caf\xe9").encode("latin-1"))
    report = read_corpus(p)
    assert len(report.prompts) == 1
    assert report.warnings and "not valid UTF-8" in report.warnings[0].message


def test_bom_and_crlf(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes(("\ufeff" + GOOD + "\r\n" + GOOD.replace("The Lamp", "Other") + "\r\n").encode("utf-8"))
    report = read_corpus(p)
    assert report.issues == [] and len(report.prompts) == 2
    assert report.prompts[0].genre == "Horror"


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl"])
def test_write_read_round_trip(tmp_path, small_prompts, suffix):
    path = write_corpus(small_prompts, tmp_path / f"out{suffix}")
    back = load_corpus(path)
    strip = lambda ps: [(p.id, p.genre, p.theme, p.title, p.text) for p in ps]  # noqa: E731
    assert strip(back) == strip(small_prompts)


def test_format_tagged_line_round_trip():
    p = Prompt("x", "Horror", "Grief", "Salt & (Pepper) [2]", "Text.")
    res = parse_tagged_line(format_tagged_line(p))
    assert res.values == {"genre": "Horror", "theme": "Grief", "title": "Salt & (Pepper) [2]"}


def test_stats(small_prompts):
    s = corpus_stats(small_prompts)
    assert s.count == 8
    assert s.by_genre["Horror"] == 2
    assert s.by_kind == {"unknown": 8}
    assert s.words["min"] <= s.words["median"] <= s.words["max"]
