"""Importing golden sets made elsewhere: a query,context,relevance CSV and RAGAS test sets (CSV, JSONL)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.corpus import load_corpus
from prompt_retriever.errors import InputError
from prompt_retriever.golden import (
    GoldenImportError,
    GoldenSet,
    check_leakage,
    import_for_evaluation,
    import_golden,
    split_by_prompt,
)
from prompt_retriever.golden.heuristic import HeuristicConfig, generate_heuristic
from prompt_retriever.golden.importing import context_list as _context_list
from prompt_retriever.golden.importing import undercount_warning
from prompt_retriever.golden.matching import PromptIndex

DATA = Path(__file__).parent / "data"
PAIRS = DATA / "import_pairs"
RAGAS = DATA / "import_ragas"
runner = CliRunner()


@pytest.fixture(scope="module")
def prompts12():
    return load_corpus(DATA / "golden12.txt")


@pytest.fixture(scope="module")
def title_of(prompts12):
    return {p.id: p.title for p in prompts12}


def judged_by_text(gs: GoldenSet, title_of) -> dict[str, dict[str, int]]:
    return {q.text: {title_of[pid]: g for pid, g in gs.qrels[q.id].items()} for q in gs.queries}


def messages(report, severity=None) -> list[str]:
    return [str(i) for i in report.issues if severity is None or i.severity == severity]


# ----------------------------------------------------------------------------- pairs CSV


def test_pairs_errors_stop_the_import_naming_file_and_line(prompts12):
    path = PAIRS / "bad.csv"
    with pytest.raises(GoldenImportError) as exc:
        import_golden(path, prompts12)
    errors = [str(i) for i in exc.value.report.errors]
    assert len(errors) == 3
    assert errors[0].startswith(f"{path}:7: error: contradictory judgments of query 'a love story on a train'")
    assert "relevant at line 5, not relevant at line 7" in errors[0]
    # line 8-9 is one record (a quoted context over two lines), so the unknown context is on line 10
    assert errors[1].startswith(f"{path}:10: error: context matches no corpus prompt")
    assert "A recipe card" in errors[1]
    assert errors[2] == f"{path}:11: error: empty query"
    assert isinstance(exc.value, InputError)  # the CLI turns it into one clear message


def test_pairs_skip_invalid_keeps_duplicates_once_and_drops_contradictions(prompts12, title_of):
    path = PAIRS / "bad.csv"
    gs, rep = import_golden(path, prompts12, skip_invalid=True)
    assert judged_by_text(gs, title_of) == {
        "lighthouse keeper ghost": {"The Keeper's Lamp": 1},
        "a love story on a train": {"Wedding Caterer": 1},  # the contradictory Sleeper Car pair is dropped
        "food memories": {"Dumpling Afternoons": 1},  # the multi-line context matched by its text
        "Find a Horror writing prompt": {"Mourning Doll": 1},
    }
    lamp_q = next(q for q in gs.queries if q.text == "lighthouse keeper ghost")
    assert [(n.query_id, title_of[n.prompt_id], n.type) for n in gs.negatives] == [
        (lamp_q.id, "Snowbound Signals", "judged")
    ]
    warnings = messages(rep, "warning")
    assert warnings[0] == (
        f"{path}:4: warning: duplicate row: query 'lighthouse keeper ghost', prompt \"The Keeper's Lamp\" "
        "(first at line 2); kept once"
    )
    assert any("the pair is dropped (--skip-invalid)" in m for m in messages(rep, "error"))
    assert (rep.rows, rep.queries, rep.positives, rep.negatives, rep.judged_pairs) == (10, 4, 4, 1, 5)
    assert (rep.duplicates, rep.contradictions, rep.dropped_pairs, rep.dropped_rows) == (1, 1, 1, 2)
    assert rep.positives_per_query == 1.0 and rep.multi_relevant == 0
    # every query has exactly one relevant prompt, so it keeps that prompt as its source (for `queries split`)
    assert all(q.source_id == next(iter(gs.qrels[q.id])) for q in gs.queries)


def test_genre_query_judging_one_prompt_is_flagged(prompts12):
    gs, rep = import_golden(PAIRS / "bad.csv", prompts12, skip_invalid=True)
    [warning] = [m for m in messages(rep, "warning") if "undercounts" in m]
    assert warning.startswith(f"{PAIRS / 'bad.csv'}:12: warning: query 'Find a Horror writing prompt' asks for Horror")
    assert "(4 such prompts in the corpus)" in warning
    assert rep.undercounting == 1
    assert any("undercounts" in line for line in rep.lines())
    # a specific query naming a genre, or one judging several prompts, is not flagged
    assert undercount_warning("a horror story about a lighthouse keeper", 1, prompts12) is None
    assert undercount_warning("Find a Horror writing prompt", 4, prompts12) is None
    assert undercount_warning("romance prompts about grief", 1, prompts12) is None  # only one such prompt
    assert undercount_warning("a story about grief", 1, prompts12) is not None  # a theme query


def test_contexts_with_the_genre_name_slip_are_repaired_by_the_corpus_parser(prompts12, title_of):
    path = PAIRS / "slip.csv"
    gs, rep = import_golden(path, prompts12)
    assert judged_by_text(gs, title_of) == {
        "grief at the lighthouse": {"The Keeper's Lamp": 1},
        "songs of a first love": {"Mixtape Summer": 1},
        "a haunted doll": {"Mourning Doll": 2},  # relevance 2: grade 2
    }
    assert [title_of[n.prompt_id] for n in gs.negatives] == ["Teeth in a Jar"]
    warnings = messages(rep, "warning")
    assert warnings[0] == (
        f"{path}:2: warning: context: theme tag <Grief> is closed by </Horror>, the genre's name; "
        "read as <Grief> </Grief>"
    )
    assert any(":4: warning: context: title tag <Mixtape Summer> is closed by </Memoir>" in w for w in warnings)
    assert any(":5: warning: context: title tag <Mourning Doll is missing its '>'" in w for w in warnings)
    assert not rep.errors


def test_a_mismatch_the_parser_does_not_repair_stays_an_error(tmp_path, prompts12):
    lamp = next(p for p in prompts12 if p.title == "The Keeper's Lamp")
    bad = tmp_path / "p.csv"
    bad.write_text(
        "query,context,relevance\n"
        f"q1,\"<Horror> </Horror> <Grief> </Courage> <The Keeper's Lamp> </The Keeper's Lamp> prompt {lamp.text}\",1\n"
        f"q2,\"<Horror> </Horror> <Grief> </Grief> <The Keeper's Lamp> </The Keeper's Lamp> prompt Other words.\",1\n"
        "q3,Some text,maybe\n"
    )
    with pytest.raises(GoldenImportError) as exc:
        import_golden(bad, prompts12)
    errors = [str(i) for i in exc.value.report.errors]
    assert f"{bad}:2: error: context is not a valid tagged line (theme closing tag </Courage>" in errors[0]
    assert errors[1].startswith(f'{bad}:3: error: context names the prompt "The Keeper\'s Lamp", but its text differs')
    assert any(e.startswith(f"{bad}:4: error: relevance 'maybe' is not a number") for e in errors)


def test_round_trip_of_the_projects_own_pairs_csv(tmp_path, prompts12, title_of):
    gs = generate_heuristic(prompts12, HeuristicConfig(seed=7))
    gs.export_pairs_csv(tmp_path / "pairs.csv")
    back, rep = import_golden(tmp_path / "pairs.csv", prompts12)
    assert judged_by_text(back, title_of) == judged_by_text(gs, title_of)  # same qrels, grades included
    text_of = {q.id: q.text for q in gs.queries}
    back_text = {q.id: q.text for q in back.queries}
    assert {(back_text[n.query_id], n.prompt_id) for n in back.negatives} == {
        (text_of[n.query_id], n.prompt_id) for n in gs.negatives
    }
    assert not rep.errors
    # the export repeats a negative that is both random and hard: reported, kept once
    assert all("duplicate row" in m for m in messages(rep, "warning"))
    assert rep.multi_relevant == sum(1 for q in gs.queries if len(gs.qrels[q.id]) > 1)


def test_an_imported_set_splits_without_leakage_and_reloads(tmp_path, prompts12):
    gs = generate_heuristic(prompts12, HeuristicConfig(seed=7))
    gs.export_pairs_csv(tmp_path / "pairs.csv")
    imported, _ = import_golden(tmp_path / "pairs.csv", prompts12)
    assert any(q.source_id is None for q in imported.queries)  # several relevant prompts: no source
    split = split_by_prompt(imported, test=0.25, dev=0.25, seed=1)
    check_leakage(split)
    assert sorted(qid for ids in split.splits.values() for qid in ids) == sorted(q.id for q in imported.queries)
    held = split.prompt_split()
    for q in split.queries:
        if q.source_id is not None:
            assert q.id in split.splits[held[q.source_id]]
    split.save(tmp_path / "g")
    again = GoldenSet.load(tmp_path / "g")
    assert again.splits == split.splits
    assert again.manifest["import"]["queries"] == len(imported.queries)
    assert again.manifest["generator"] == "import:pairs"


# ----------------------------------------------------------------------------- RAGAS

EXPECTED_RAGAS = {
    # the chunk starts inside the genre tag; the next prompt is cut after 11 words (53 characters): not relevant
    "What does the lighthouse keeper's daughter find when she climbs to the lamp?": {"The Keeper's Lamp": 1},
    # a chunk starting mid-text (19 words of the Lamp) and ending mid-tag, plus a whole tagged line
    "Which stories are set somewhere the lead is cut off in the snow or by grief?": {
        "The Keeper's Lamp": 1,
        "Snowbound Signals": 1,
        "Sleeper Car Argument": 1,
    },
    # a chunk from a closing tag to a cut opening tag: two prompts, not the third whose tag is cut
    "Who does the caterer remember, and who tends the roses?": {"Wedding Caterer": 1, "Widower's Garden": 1},
}


def test_ragas_csv_with_python_literal_lists(prompts12, title_of):
    gs, rep = import_golden(RAGAS / "testset.csv", prompts12)
    assert rep.format == "ragas"  # guessed from the columns
    assert judged_by_text(gs, title_of) == EXPECTED_RAGAS
    assert (rep.chunks, rep.unmatched_chunks, rep.queries, rep.positives, rep.multi_relevant) == (4, 0, 3, 6, 2)
    assert rep.positives_per_query == 2.0
    assert "reference chunks: 4 read, 0 matched no prompt" in rep.lines()
    assert rep.synthesizers["single_hop_specifc_query_synthesizer"] == 1
    assert not gs.negatives and not rep.issues


def test_ragas_jsonl_reports_unmatched_chunks_and_duplicates(prompts12, title_of):
    path = RAGAS / "testset.jsonl"
    with pytest.raises(GoldenImportError) as exc:
        import_golden(path, prompts12)
    [error] = exc.value.report.errors
    assert str(error).startswith(f"{path}:5: error: reference context 1 of 1 matches no prompt")
    assert "Quarterly revenue" in str(error)

    gs, rep = import_golden(path, prompts12, skip_invalid=True)
    assert judged_by_text(gs, title_of) == EXPECTED_RAGAS
    assert (rep.chunks, rep.unmatched_chunks, rep.duplicates, rep.dropped_rows) == (6, 1, 1, 1)
    assert "reference chunks: 6 read, 1 matched no prompt" in rep.lines()
    warnings = messages(rep, "warning")
    assert warnings[0].startswith(f"{path}:4: warning: duplicate question")
    assert warnings[1].startswith(f"{path}:5: warning: question 'How did sales do last quarter?'")
    assert rep.to_dict()["unmatched_chunks"] == 1


def test_chunk_matching_thresholds(prompts12, title_of):
    index = PromptIndex(prompts12)
    lamp = next(p for p in prompts12 if p.title == "The Keeper's Lamp")
    words = lamp.text.split()
    assert {title_of[p] for p in index.match_chunk(" ".join(words[-12:]))} == {"The Keeper's Lamp"}
    assert index.match_chunk(" ".join(words[-8:])) == set()  # 8 words, under 60 characters
    assert index.match_chunk("Chapter one. " + lamp.text.upper() + " The end.") == {lamp.id}  # case and noise
    assert index.match_chunk("<Horror> </Horror> <Grief> </Gri") == set()


def test_context_lists_are_literals_never_code():
    assert _context_list("['a', \"b's\"]") == (["a", "b's"], None)
    assert _context_list('["a", "b"]') == (["a", "b"], None)
    assert _context_list(["a"]) == (["a"], None)
    for bad in ("__import__('os').system('true')", "[open('/etc/passwd')]", "[1, 2]", "{'a': 1}", "[" * 5000):
        items, error = _context_list(bad)
        assert items is None and error


def test_unknown_columns_are_an_error(tmp_path, prompts12):
    f = tmp_path / "x.csv"
    f.write_text("question,answer\nq,a\n")
    with pytest.raises(InputError, match="cannot tell the format"):
        import_golden(f, prompts12)
    with pytest.raises(InputError, match=r"needs column\(s\) \['user_input', 'reference_contexts'\]"):
        import_golden(f, prompts12, format="ragas")


def test_import_for_evaluation_puts_every_query_in_test(prompts12):
    gs, rep = import_for_evaluation(RAGAS / "testset.csv", prompts12)
    assert gs.splits == {"test": [q.id for q in gs.queries]} and len(gs.queries) == 3


# ----------------------------------------------------------------------------- CLI


def test_cli_queries_import_writes_a_golden_set_with_its_report(tmp_path):
    out = tmp_path / "g"
    corpus = str(DATA / "golden12.txt")
    res = runner.invoke(app, ["queries", "import", str(PAIRS / "bad.csv"), "--corpus", corpus, "--out", str(out)])
    assert res.exit_code == 2
    text = res.output.replace("\n", "")
    assert f"{PAIRS / 'bad.csv'}:10: error: context matches no corpus prompt" in text
    assert "pass --skip-invalid" in text and not out.exists()

    res = runner.invoke(
        app, ["queries", "import", str(PAIRS / "bad.csv"), "--corpus", corpus, "--out", str(out), "--skip-invalid"]
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "imported 4 queries" in text and "5 judged pairs" in text and "mean 1.0" in text
    assert "the metric then undercounts" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["import"]["judged_pairs"] == 5 and manifest["import"]["undercounting_queries"] == 1
    assert (out / "pairs.csv").exists() and (out / "qrels" / "all.tsv").exists()
    with open(out / "negatives.tsv") as fh:
        assert [r["type"] for r in csv.DictReader(fh, delimiter="\t")] == ["judged"]

    res = runner.invoke(app, ["queries", "split", str(out)])
    assert res.exit_code == 0, res.output
    check_leakage(GoldenSet.load(out))


def test_cli_evaluate_ragas_and_pairs_on_the_fly(tmp_path):
    corpus = str(DATA / "golden12.txt")
    common = ["--corpus", corpus, "-s", "bm25", "--no-plots", "--bootstrap", "100", "--permutations", "100"]
    res = runner.invoke(app, ["evaluate", "--ragas", str(RAGAS / "testset.csv"), "--out", str(tmp_path / "r"), *common])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["split"] == "test" and report["queries"] == 3
    res = runner.invoke(app, ["evaluate", "--pairs", str(PAIRS / "slip.csv"), "--out", str(tmp_path / "p"), *common])
    assert res.exit_code == 0, res.output
    assert "test: 3 queries" in res.output
    res = runner.invoke(app, ["evaluate", "--pairs", "a.csv", "--ragas", "b.csv", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
