"""Property-based tests of the corpus parser: arbitrary text and bytes never crash it, and every line
is accounted for (a prompt, a reported error, or a blank line)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prompt_retriever.corpus import Prompt, read_corpus, write_corpus

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
        ]
    ),
    max_size=30,
).map("".join)


def check_accounting(path: Path, report) -> None:
    lines = report.lines_read
    assert len(report.prompts) + len(report.errors) + report.blank_lines >= lines - sum(
        1 for i in report.errors if i.line == 0
    )
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
    lines = text.encode("utf-8", "surrogatepass").decode("utf-8-sig", "replace").splitlines()
    nonblank = [n for n, line in enumerate(lines, 1) if line.strip() and "\x00" not in line]
    nul = [n for n, line in enumerate(lines, 1) if "\x00" in line]
    prompt_lines = {int(p.source.rsplit(":", 1)[1]) for p in report.prompts}
    error_lines = {i.line for i in report.errors}
    assert set(nonblank) <= prompt_lines | error_lines
    assert set(nul) <= error_lines
    assert not prompt_lines & error_lines


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
    st.tuples(TAG_FIELD, TAG_FIELD, TAG_FIELD, TEXT), min_size=1, max_size=8, unique_by=lambda r: r[2].casefold()
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
