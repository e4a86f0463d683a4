"""One spelling per idea: the new spellings work, the old ones keep working hidden with a deprecation note."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from prompt_retriever.cli import app

runner = CliRunner()


def help_text(*command: str) -> str:
    res = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    return res.output


def test_corpus_commands_take_the_corpus_option_and_still_a_hidden_positional(small_corpus_path):
    for command in ("validate", "stats"):
        assert "--corpus" in help_text("corpus", command)
        assert "FILES" not in help_text("corpus", command)
    res = runner.invoke(app, ["corpus", "stats", "-c", str(small_corpus_path), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["count"] == 8
    res = runner.invoke(app, ["corpus", "stats", str(small_corpus_path), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["count"] == 8
    res = runner.invoke(app, ["corpus", "validate", "--corpus", str(small_corpus_path)])
    assert res.exit_code == 0 and "8 prompts, 0 errors" in res.output


def test_evaluate_cutoffs_and_the_old_k(tmp_path, small_corpus_path):
    text = help_text("evaluate")
    assert "--cutoffs" in text and "--k " not in text and "--judge-base-url" not in text
    assert "--llm-base-url" in text and "--llm-model" in text
    g = tmp_path / "g"
    assert runner.invoke(app, ["queries", "generate", "-c", str(small_corpus_path), "-o", str(g)]).exit_code == 0
    common = ["evaluate", "--golden", str(g), "-s", "bm25", "--split", "all", "--no-plots",
              "--bootstrap", "100", "--permutations", "100"]  # fmt: skip
    res = runner.invoke(app, [*common, "--cutoffs", "1,5", "-o", str(tmp_path / "new")])
    assert res.exit_code == 0, res.output
    assert "deprecated" not in res.output
    assert "ndcg@5" in json.loads((tmp_path / "new" / "report.json").read_text())["systems"]["bm25"]["metrics"]
    res = runner.invoke(app, [*common, "--k", "1,5", "-o", str(tmp_path / "old")])
    assert res.exit_code == 0, res.output
    assert "note: --k is deprecated; use --cutoffs" in res.stderr
    res = runner.invoke(app, [*common, "--k", "1", "--cutoffs", "5", "-o", str(tmp_path / "both")])
    assert res.exit_code == 2 and "--cutoffs and --k are one option" in res.output


def test_evaluate_judge_takes_the_llm_endpoint_options(tmp_path):
    out = ["--out", str(tmp_path / "x"), "--golden", str(tmp_path)]
    res = runner.invoke(app, ["evaluate", *out, "--llm-model", "j"])
    assert res.exit_code == 2 and "needs both --llm-base-url and --llm-model" in res.output
    res = runner.invoke(app, ["evaluate", *out, "--judge-model", "j"])  # the old spelling, in its own words
    assert res.exit_code == 2 and "needs both --judge-base-url and --judge-model" in res.output
    assert "note: --judge-model is deprecated; use --llm-model" in res.stderr


def test_queries_generate_takes_llm_base_url_and_the_old_base_url(tmp_path, small_corpus_path):
    text = help_text("queries", "generate")
    assert "--llm-base-url" in text and "--base-url " not in text
    common = ["queries", "generate", "-c", str(small_corpus_path), "-o", str(tmp_path / "g"), "--method", "llm"]
    res = runner.invoke(app, [*common, "--llm-base-url", "http://127.0.0.1:9/v1"])
    assert res.exit_code == 2 and "--method llm needs --llm-base-url and --llm-model" in res.output
    res = runner.invoke(app, [*common, "--base-url", "http://127.0.0.1:9/v1"])
    assert res.exit_code == 2 and "note: --base-url is deprecated; use --llm-base-url" in res.stderr


def test_compare_takes_base_and_the_old_baseline():
    text = help_text("compare")
    assert "--base " in text and "--baseline" not in text
    res = runner.invoke(app, ["compare", "--golden", "nowhere", "--candidate", "m", "-o", "x", "--baseline", "b"])
    assert "note: --baseline is deprecated; use --base" in res.stderr
    res = runner.invoke(
        app, ["compare", "--golden", "g", "--candidate", "m", "-o", "x", "--base", "a", "--baseline", "b"]
    )
    assert res.exit_code == 2 and "--base and --baseline are one option" in res.output


def test_queries_split_has_no_by_option_in_help_and_still_accepts_it(tmp_path, small_corpus_path):
    assert "--by" not in help_text("queries", "split")
    g = tmp_path / "g"
    assert runner.invoke(app, ["queries", "generate", "-c", str(small_corpus_path), "-o", str(g)]).exit_code == 0
    assert runner.invoke(app, ["queries", "split", str(g), "--by", "prompt"]).exit_code == 0
    res = runner.invoke(app, ["queries", "split", str(g), "--by", "query"])
    assert res.exit_code == 2 and "unknown split unit" in res.output


def test_search_takes_a_system_with_its_model_and_a_backend(small_corpus_path):
    text = help_text("search")
    assert "-s" in text and "KIND[:MODEL]" in " ".join(text.split()) and "--backend" in text
    corpus = ["-c", str(small_corpus_path), "--jsonl", "-k", "1"]
    res = runner.invoke(app, ["search", "robot on a space station", "-s", "hybrid:all-MiniLM-L6-v2", *corpus])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["title"] == "Orbit of Small Repairs"
    res = runner.invoke(app, ["search", "robot", "-s", "hybrid:x", "--model", "y", *corpus])
    assert res.exit_code == 2 and "drop --model" in res.output
    res = runner.invoke(app, ["search", "robot on a space station", "--backend", "onnx-int8", *corpus])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["title"] == "Orbit of Small Repairs"
    res = runner.invoke(app, ["search", "robot", "--backend", "gpu", *corpus])
    assert res.exit_code == 2 and "unknown backend 'gpu'" in res.output
