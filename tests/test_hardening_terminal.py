"""Corpus, query and model text reaches the terminal as inert text: rich markup is escaped and
control characters (ESC, BEL, OSC...) are shown visibly, never sent raw."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prompt_retriever.cli import app, safe
from prompt_retriever.corpus import load_corpus

runner = CliRunner()

HOSTILE = [
    {"title": "Closing [/] tag", "text": "A title that closes a tag it never opened."},
    {"title": "Click me", "text": "robot station [link=https://example.invalid]click[/link] here"},
    {"title": "Esc \x1b[31mred", "text": "clear \x1b[2J screen \x1b]0;pwned\x07 title bell \x07 end"},
]


@pytest.fixture
def hostile_corpus(tmp_path, small_corpus_path):
    base = load_corpus(small_corpus_path)
    path = tmp_path / "hostile.jsonl"
    rows = []
    for p, h in zip(base, HOSTILE, strict=False):
        rows.append({"genre": p.genre, "theme": p.theme, **h})
    rows += [{"genre": p.genre, "theme": p.theme, "title": p.title, "text": p.text} for p in base[len(HOSTILE) :]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def assert_inert(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output and "\x9b" not in output
    assert "MarkupError" not in output


def test_safe_escapes_markup_and_shows_controls():
    assert safe("[/]") == "\\[/]"
    assert safe("a\x1b[2Jb\x07") == "a\\x1b[2Jb\\x07"
    assert safe("x\u202ey\x9b") == "x\\u202ey\\x9b"
    assert safe("tab\tstays") == "tab\tstays"


def test_search_prints_hostile_prompts_inertly(hostile_corpus):
    res = runner.invoke(app, ["search", "robot click screen tag", "--corpus", str(hostile_corpus), "-k", "20"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert_inert(res.output)
    assert "Closing [/] tag" in res.output
    assert "[link=https://example.invalid]click[/link]" in res.output
    assert "\\x1b[2J" in res.output and "\\x1b]0;pwned\\x07" in res.output


def test_corpus_validate_reports_hostile_titles_inertly(hostile_corpus, tmp_path):
    dup = tmp_path / "dup.jsonl"
    lines = hostile_corpus.read_text(encoding="utf-8").splitlines()
    dup.write_text("\n".join([lines[0], lines[0], lines[2], lines[2]]) + "\n", encoding="utf-8")
    res = runner.invoke(app, ["corpus", "validate", str(dup)])
    assert res.exit_code == 1, (res.output, res.exception)  # errors found, not a crash
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert_inert(res.output)
    assert "Closing [/] tag" in res.output
    assert "\\x1b[31mred" in res.output


def test_corpus_stats_escapes_genres_and_themes(tmp_path, small_corpus_path):
    base = load_corpus(small_corpus_path)
    path = tmp_path / "g.jsonl"
    rows = [{"genre": "Odd [/] genre", "theme": "Th\x1b]0;x\x07eme", "title": "T1", "text": base[0].text}]
    rows += [{"genre": p.genre, "theme": p.theme, "title": p.title, "text": p.text} for p in base[1:]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    res = runner.invoke(app, ["corpus", "stats", str(path)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert_inert(res.output)
    assert "Odd [/] genre" in res.output


def test_file_line_prints_as_written_never_as_an_emoji(tmp_path, small_corpus_path):
    """`:100:` is rich's emoji code for 💯: a problem on line 100 must still read `FILE:100:`."""
    good = [
        f"<Horror> </Horror> <Grief> </Grief> <Keeper number {i}> </Keeper number {i}> prompt The keeper {i} "
        f"climbs the stairs of lighthouse number {i} every night to see who turns the lamp on."
        for i in range(99)
    ]
    path = tmp_path / "f_prompts.txt"
    path.write_text("\n".join([*good, "nonsense line without tags"]) + "\n", encoding="utf-8")
    res = runner.invoke(app, ["corpus", "validate", str(path)])
    assert res.exit_code == 1, (res.output, res.exception)
    assert f"{path}:100: error" in res.output.replace("\n", "")
    assert "\U0001f4af" not in res.output
    res = runner.invoke(app, ["search", "keeper", "--corpus", str(path)])  # the same report on the way to an error
    assert res.exit_code == 2 and f"{path}:100: error" in res.output.replace("\n", "")


def test_emoji_codes_in_prompts_and_errors_print_as_written(tmp_path, small_corpus_path):
    base = load_corpus(small_corpus_path)
    path = tmp_path / "emoji.jsonl"
    rows = [{"genre": p.genre, "theme": p.theme, "title": p.title, "text": p.text} for p in base]
    rows[0] |= {"title": "Keeper :fire: of line :100:", "text": "The lighthouse :smile: keeper " + base[0].text}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    res = runner.invoke(app, ["search", "lighthouse keeper", "--corpus", str(path), "-k", "1"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "Keeper :fire: of line :100:" in res.output and "The lighthouse :smile: keeper" in res.output
    res = runner.invoke(app, ["search", "x", "--corpus", str(path), "--genre", ":fire:"])
    assert res.exit_code == 2 and "unknown genre ':fire:'" in res.output
