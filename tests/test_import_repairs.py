"""Importing a golden set over a corpus the parser repaired: a CSV row quoting one half of a record the
parser joins, a repair quoted by many rows (printed once), the corpus's repairs summarised by kind
(every one under --verbose), and a RAGAS question whose chunks make too many prompts relevant."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.corpus import load_corpus, read_corpus
from prompt_retriever.golden import import_golden
from prompt_retriever.golden.importing import OVERCOUNT_MAX

runner = CliRunner()

LAMP = (
    "<Horror> </Horror> <Grief> </Grief> <The Keeper's Lamp> </The Keeper's Lamp> prompt The lighthouse keeper "
    "died in March, yet every night the lamp still turns on."
)
LOG_HEAD = "<Horror> </Horror> <Grief> </Grief>"
LOG_TAIL = (
    "<The Keeper's Last Log> </The Keeper's Last Log> prompt The keeper's log keeps writing itself after the "
    "funeral, one entry a night, in a hand nobody recognises."
)
KNIGHT_SLIP = (
    "<Adventure> </Adventure> <Courage> </Adventure> <The Smallest Knight> </The Smallest Knight> prompt In a "
    "kingdom of giants, the smallest knight is sent to parley with a dragon."
)
DRAWER = (
    "<Mystery> </Mystery> <Secrets> </Secrets> <The Locked Drawer> </The Locked Drawer> prompt A drawer that no "
    "key in the house opens, and the note someone slid under it."
)
# line 1: a whole record; lines 2-3: one record broken over two lines (its head fits The Keeper's Lamp too,
# so only the parser's join tells which prompt it is); line 4: a theme closed with the genre's name
CORPUS = "\n".join([LAMP, LOG_HEAD, LOG_TAIL, KNIGHT_SLIP, DRAWER]) + "\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def csv_row(query: str, context: str, relevance: object) -> str:
    return f'"{query}","{context}",{relevance}\n'


def titles(gs) -> dict[str, dict[str, int]]:
    by_id = {p.id: p.title for p in gs.corpus}
    return {q.text: {by_id[pid]: g for pid, g in gs.qrels[q.id].items()} for q in gs.queries}


def warnings_of(report) -> list[str]:
    return [str(i) for i in report.warnings]


# ----------------------------------------------------------------------------- halves of a joined record


def test_rows_quoting_either_half_of_a_joined_record_map_to_it_with_one_warning(tmp_path):
    corpus_path = write(tmp_path / "c.txt", CORPUS)
    prompts = load_corpus(corpus_path)
    pairs = write(
        tmp_path / "pairs.csv",
        "query,context,relevance\n"
        + csv_row("a log that writes itself", LOG_HEAD, 1)  # line 2: the first half (genre and theme only)
        + csv_row("a log that writes itself", DRAWER, 0)  # line 3
        + csv_row("a diary kept by a ghost", LOG_HEAD, 1)  # line 4: the same half, another query
        + csv_row("the keeper's diary", LOG_TAIL, 1)  # line 5: the second half (the title pair and the text)
        + csv_row("a drawer no key opens", DRAWER, 1)  # line 6
        + csv_row("a drawer no key opens", LOG_TAIL, 0),  # line 7: the second half as a judged negative
    )
    gs, report = import_golden(pairs, prompts)
    assert not report.errors
    assert titles(gs) == {
        "a log that writes itself": {"The Keeper's Last Log": 1},
        "a diary kept by a ghost": {"The Keeper's Last Log": 1},
        "the keeper's diary": {"The Keeper's Last Log": 1},
        "a drawer no key opens": {"The Locked Drawer": 1},
    }
    by_id = {p.id: p.title for p in prompts}
    assert sorted(by_id[n.prompt_id] for n in gs.negatives) == ["The Keeper's Last Log", "The Locked Drawer"]
    [warning] = warnings_of(report)
    assert warning.startswith(f"{pairs}:2: warning: ")
    assert "lines 2, 4 quote only the first half (the genre and theme pairs)" in warning
    assert "lines 5, 7 quote only the second half (the title pair and the text)" in warning
    assert f"lines 2 and 3 of {corpus_path}" in warning and '"The Keeper\'s Last Log"' in warning
    assert report.half_records == 4
    assert any("half of a record broken over two lines: 4 rows" in line for line in report.lines())


def test_a_half_that_fits_several_prompts_and_no_join_stays_an_error(tmp_path):
    # the same prompts, read from a file in which no record is broken: the head fits two prompts
    joined = load_corpus(write(tmp_path / "c.txt", CORPUS))
    flat = tmp_path / "flat.jsonl"
    flat.write_text("".join(json.dumps(p.to_dict() | {"source": None}) + "\n" for p in joined), encoding="utf-8")
    prompts = load_corpus(flat)
    pairs = write(
        tmp_path / "pairs.csv",
        "query,context,relevance\n" + csv_row("q", LOG_HEAD, 1) + csv_row("a drawer no key opens", DRAWER, 1),
    )
    _, report = import_golden(pairs, prompts, skip_invalid=True)
    [error] = [str(e) for e in report.errors]
    assert error.startswith(f"{pairs}:2: error: context holds only the genre and theme pairs, which 2 prompts have")


# ----------------------------------------------------------------------------- each distinct repair once


def test_a_repaired_context_quoted_by_several_rows_is_reported_once(tmp_path):
    prompts = load_corpus(write(tmp_path / "c.txt", CORPUS))
    pairs = write(
        tmp_path / "pairs.csv",
        "query,context,relevance\n"
        + csv_row("a tiny knight", KNIGHT_SLIP, 1)  # line 2
        + csv_row("parley with a dragon", KNIGHT_SLIP, 1)  # line 3
        + csv_row("parley with a dragon", LAMP, 0)  # line 4
        + csv_row("giants and courage", "  " + KNIGHT_SLIP.replace("> <", ">  <"), 2),  # line 5: same repair
    )
    gs, report = import_golden(pairs, prompts)
    assert not report.errors
    [warning] = warnings_of(report)
    assert warning == (
        f"{pairs}:2: warning: context: theme tag <Courage> is closed by </Adventure>, the genre's name; read as "
        "<Courage> </Courage> (the same repair on 3 rows: lines 2, 3, 5)"
    )
    assert titles(gs)["giants and courage"] == {"The Smallest Knight": 2}


# ----------------------------------------------------------------------------- the corpus's repairs by kind

BROKEN = 5  # records broken over two lines in the corpus below
SLIPS = 4  # themes closed with the genre's name


def repaired_corpus(tmp_path: Path) -> Path:
    lines = []
    for i in range(BROKEN):
        lines += ["<Horror> </Horror> <Grief> </Grief>", f"<Broken {i}> </Broken {i}> prompt Broken record {i}."]
    for i in range(SLIPS):
        lines.append(f"<Adventure> </Adventure> <Courage> </Adventure> <Slip {i}> </Slip {i}> prompt Slip {i}.")
    lines.append("<Poetry> </Poetry> <Hope> </Hope> <Plain> </Plain> prompt A plain line.")
    return write(tmp_path / "repaired.txt", "\n".join(lines) + "\n")


def test_the_report_lists_the_first_repairs_of_each_kind_and_counts_them(tmp_path):
    path = repaired_corpus(tmp_path)
    report = read_corpus(path)
    shown = report.listing()
    joined_lines = [2, 4, 6]  # the second line of each of the first three joined records
    slip_lines = [11, 12, 13]
    assert [(i.line, i.severity) for i in shown.issues] == [(n, "warning") for n in joined_lines + slip_lines]
    [summary] = shown.summary
    assert summary == (
        f"repairs by kind: {BROKEN} records broken over two lines, joined (first 3 listed); "
        f"{SLIPS} tags closed with the genre's name (first 3 listed); --verbose lists every one"
    )
    everything = report.listing(verbose=True)
    assert everything.issues == report.issues and everything.summary == []


def test_cli_validate_summarises_repairs_and_lists_all_under_verbose(tmp_path):
    path = repaired_corpus(tmp_path)
    res = runner.invoke(app, ["corpus", "validate", str(path)])
    assert res.exit_code == 0, res.output
    text = res.output.replace("\n", "")
    assert f"{path}:6: warning: record broken over lines 5 and 6" in text
    assert f"{path}:8: warning" not in text and f"{path}:14: warning" not in text
    assert f"{BROKEN} records broken over two lines, joined (first 3 listed)" in text
    assert f"{BROKEN + SLIPS + 1} prompts, 0 errors, {BROKEN + SLIPS} warnings" in text

    res = runner.invoke(app, ["corpus", "validate", str(path), "--verbose"])
    assert res.exit_code == 0, res.output
    text = res.output.replace("\n", "")
    for n in (2, 4, 6, 8, 10, 11, 12, 13, 14):
        assert f"{path}:{n}: warning: " in text
    assert "repairs by kind" not in text


def test_cli_queries_import_summarises_the_corpus_repairs(tmp_path):
    path = repaired_corpus(tmp_path)
    pairs = write(
        tmp_path / "pairs.csv",
        "query,context,relevance\n"
        + csv_row("a broken record", "<Broken 4> </Broken 4> prompt Broken record 4.", 1)
        + csv_row("a plain line", "A plain line.", 1),
    )
    args = ["queries", "import", str(pairs), "--corpus", str(path), "--out", str(tmp_path / "g")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    text = res.output.replace("\n", "")
    assert f"{path}:10: warning" not in text and "repairs by kind" in text
    assert f"{pairs}:2: warning: the row at line 2 quotes only the second half" in text
    res = runner.invoke(app, [*args, "--verbose"])
    assert res.exit_code == 0, res.output
    assert f"{path}:10: warning: record broken over lines 9 and 10" in res.output.replace("\n", "")


# ----------------------------------------------------------------------------- RAGAS: chunks spanning many prompts

ADJECTIVES = (
    "amber",
    "brittle",
    "copper",
    "dusty",
    "elder",
    "frozen",
    "gilded",
    "hollow",
    "ivory",
    "jagged",
    "knotted",
)
PLACES = ("Arden", "Bracken", "Caldera", "Dunmore", "Elston", "Fallow", "Garrow", "Hallam", "Inver", "Jessop", "Lorne")
ROLES = ("baker", "carter", "diver", "envoy", "farrier", "gardener", "herald", "jailer", "keeper", "miller", "reeve")


def test_ragas_question_whose_chunks_make_many_prompts_relevant_is_flagged(tmp_path):
    n = OVERCOUNT_MAX + 1  # one more than the threshold
    lines = [
        f"<Fantasy> </Fantasy> <Secrets> </Secrets> <Tale {i}> </Tale {i}> prompt The {ADJECTIVES[i]} bell of "
        f"{PLACES[i]} rings once a year, and only the {ROLES[i]} knows why it is rung at dawn."
        for i in range(n)
    ]
    corpus_path = write(tmp_path / "c.txt", "\n".join(lines) + "\n")
    prompts = load_corpus(corpus_path)
    ragas = write(
        tmp_path / "testset.jsonl",
        json.dumps({"user_input": "What is the story behind the bell of Arden?", "reference_contexts": [lines[0]]})
        + "\n"
        + json.dumps({"user_input": "Why are the bells rung?", "reference_contexts": [" ".join(lines)]})
        + "\n",
    )
    gs, report = import_golden(ragas, prompts)
    assert sorted(len(r) for r in gs.qrels.values()) == [1, n]  # imported as judged, but flagged
    [warning] = warnings_of(report)
    assert warning.startswith(
        f"{ragas}:2: warning: question 'Why are the bells rung?': its 1 reference chunk(s) make {n} prompts relevant"
    )
    assert "the metric then overcounts" in warning
    assert report.overcounting == 1 and report.to_dict()["overcounting_queries"] == 1
    assert any("the metric then overcounts" in line for line in report.lines())
