"""The query set `evaluate` runs on, loaded by the library (`golden.evalsets`), not by the CLI: library
errors, which the CLI turns into its one-line message."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.errors import InputError, PromptRetrieverError
from prompt_retriever.golden.evalsets import load_eval_set, same_corpus, with_dev_split

runner = CliRunner()


@pytest.fixture
def golden(tmp_path, small_corpus_path):
    g = tmp_path / "g"
    assert runner.invoke(app, ["queries", "generate", "-c", str(small_corpus_path), "-o", str(g)]).exit_code == 0
    assert runner.invoke(app, ["queries", "split", str(g), "--test", "0.25", "--dev", "0.25"]).exit_code == 0
    return g


def test_no_query_set_is_a_library_error():
    with pytest.raises(InputError):
        load_eval_set(None, None)
    res = runner.invoke(app, ["evaluate", "-o", "nowhere"])
    assert res.exit_code == 2 and "--golden" in res.output and "Traceback" not in res.output


def test_judged_queries_over_a_golden_folder_get_its_dev_split(golden, tmp_path, small_prompts):
    from prompt_retriever.golden.goldenset import GoldenSet

    base = GoldenSet.load(golden)
    first = small_prompts[0]
    judged = tmp_path / "judged.jsonl"
    judged.write_text(json.dumps({"query": "a lighthouse keeper alone", "relevant": {first.id: 2}}) + "\n")
    gs = load_eval_set(golden, judged)
    assert gs.splits["dev"] == base.splits["dev"] and len(gs.splits["test"]) == 1
    assert same_corpus(gs.corpus, base.corpus)
    with pytest.raises(PromptRetrieverError):  # judged queries with no corpus to read them over
        load_eval_set(None, judged, None)
    over = load_eval_set(None, judged, lambda: small_prompts)  # the corpus loaded only when needed
    assert "dev" not in over.splits or not over.splits["dev"]
    assert with_dev_split(over, None) is over
