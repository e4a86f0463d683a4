from __future__ import annotations

import json

from typer.testing import CliRunner

from prompt_retriever.cli import app

runner = CliRunner()


def test_help_lists_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("search", "corpus", "index"):
        assert cmd in res.output


def test_corpus_validate_ok(small_corpus_path):
    res = runner.invoke(app, ["corpus", "validate", str(small_corpus_path)])
    assert res.exit_code == 0, res.output
    assert "8 prompts, 0 errors" in res.output


def test_corpus_validate_reports_and_fails(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text(
        "<Horror> </Horror> <Grief> </Grief> <T> </T> prompt fine text\n"
        "<Discovery> </Adventure> <A> </A> <B> </B> prompt x\n"
    )
    res = runner.invoke(app, ["corpus", "validate", str(bad)])
    assert res.exit_code == 1
    assert f"{bad}:2: error: genre closing tag </Adventure> does not match" in res.output.replace("\n", "")


def test_corpus_stats_json(small_corpus_path):
    res = runner.invoke(app, ["corpus", "stats", str(small_corpus_path), "--json"])
    assert res.exit_code == 0
    assert json.loads(res.output)["count"] == 8


def test_search_json_with_filters(small_corpus_path):
    res = runner.invoke(
        app,
        [
            "search",
            "lonely lighthouse",
            "-k",
            "2",
            "--genre",
            "Horror",
            "--jsonl",
            "--corpus",
            str(small_corpus_path),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [r["rank"] for r in rows] == [1, 2]
    assert all(r["genre"] == "Horror" for r in rows)
    assert rows[0]["title"] == "The Keeper's Last Log"


def test_search_errors(small_corpus_path, tmp_path):
    res = runner.invoke(app, ["search", "x", "--genre", "Westerns", "--corpus", str(small_corpus_path)])
    assert res.exit_code == 2 and "unknown genre 'Westerns'" in res.output
    res = runner.invoke(app, ["search", "  ", "--corpus", str(small_corpus_path)])
    assert res.exit_code == 2 and "empty query" in res.output
    bad = tmp_path / "bad.txt"
    bad.write_text("nonsense line\n")
    res = runner.invoke(app, ["search", "x", "--corpus", str(bad)])
    assert res.exit_code == 2 and f"{bad}:1" in res.output
    res = runner.invoke(app, ["search", "x", "--corpus", str(small_corpus_path), "--model", "nobody/no-model"])
    assert res.exit_code == 2 and "--allow-download" in res.output


def test_index_with_the_int8_backend(tmp_path, small_corpus_path):
    res = runner.invoke(
        app, ["index", "--out", str(tmp_path / "idx"), "--corpus", str(small_corpus_path), "--backend", "onnx-int8"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["backend"] == "onnx-int8"
    res = runner.invoke(
        app, ["search", "robot on a space station", "--index", str(tmp_path / "idx"), "--jsonl", "-k", "1"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["title"] == "Orbit of Small Repairs"
    res = runner.invoke(
        app, ["index", "--out", str(tmp_path / "x"), "--corpus", str(small_corpus_path), "--backend", "gpu"]
    )
    assert res.exit_code != 0 and "unknown backend 'gpu'" in res.output


def test_index_then_search_saved_index(tmp_path, small_corpus_path):
    res = runner.invoke(app, ["index", "--out", str(tmp_path / "idx"), "--corpus", str(small_corpus_path)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["search", "robot on a space station", "--index", str(tmp_path / "idx"), "--jsonl", "-k", "1"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["title"] == "Orbit of Small Repairs"


def test_train_and_pipeline_option_defaults_are_the_training_defaults():
    """The CLI spells the defaults out for --help; they must stay those of TrainConfig (chosen on dev)."""
    import inspect

    from prompt_retriever.cli import pipeline, train_cmd
    from prompt_retriever.training import TrainConfig

    cfg = TrainConfig()
    expected = {
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.learning_rate,
        "hard_negatives": cfg.hard_negatives,
        "max_rows": cfg.max_rows,
        "natural_share": cfg.natural_share,
        "warmup": cfg.warmup_ratio,
        "seed": cfg.seed,
    }
    for command in (train_cmd, pipeline):
        params = inspect.signature(inspect.unwrap(command)).parameters
        got = {name: params[name].default for name in expected}
        assert got == expected, (command.__name__, got)


def test_evaluate_help_lists_every_system_kind():
    res = runner.invoke(app, ["evaluate", "--help"], terminal_width=200)
    assert res.exit_code == 0
    for kind in ("bm25", "hybrid-rrf", "hybrid-adaptive", "--run"):
        assert kind in res.output
    for command in ("search", "serve"):
        assert "hybrid-adaptive" in runner.invoke(app, [command, "--help"], terminal_width=200).output


def refused(res, *options: str) -> bool:
    """Exit 2 with the one line that names the options given together."""
    text = res.output.replace("\n", " ")
    return res.exit_code == 2 and " and ".join(options) + " cannot be used together" in text


def test_search_refuses_options_an_index_would_ignore(tmp_path, small_corpus_path):
    idx = str(tmp_path / "idx")
    assert runner.invoke(app, ["index", "--out", idx, "--corpus", str(small_corpus_path)]).exit_code == 0
    res = runner.invoke(app, ["search", "ghost", "--index", idx, "--model", "all-MiniLM-L6-v2"])
    assert refused(res, "--index", "--model"), res.output
    res = runner.invoke(app, ["search", "ghost", "--index", idx, "--corpus", str(small_corpus_path)])
    assert refused(res, "--index", "--corpus"), res.output
    assert runner.invoke(app, ["search", "ghost", "--index", idx, "--system", "bm25"]).exit_code == 0  # allowed


def test_serve_refuses_options_that_would_be_ignored(tmp_path, small_corpus_path):
    import subprocess
    import sys

    from server_util import free_port

    idx = tmp_path / "idx"
    assert runner.invoke(app, ["index", "--out", str(idx), "--corpus", str(small_corpus_path)]).exit_code == 0
    for extra, options in (
        (["--index", str(idx), "--model", "all-MiniLM-L6-v2"], ("--index", "--model")),
        (["--corpus", str(small_corpus_path), "--qdrant-url", "http://127.0.0.1:9", "--qdrant-path", str(tmp_path)],
         ("--qdrant-url", "--qdrant-path")),
    ):  # fmt: skip
        cmd = [sys.executable, "-m", "prompt_retriever.cli", "serve", "--port", str(free_port()), *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # a server would hang here
        assert done.returncode == 2, done.stderr
        assert " and ".join(options) + " cannot be used together" in done.stderr.replace("\n", " ")


def test_evaluate_refuses_options_that_would_be_ignored(tmp_path, small_corpus_path):
    g = tmp_path / "g"
    res = runner.invoke(app, ["queries", "generate", "--corpus", str(small_corpus_path), "--out", str(g)])
    assert res.exit_code == 0, res.output
    out = ["--out", str(tmp_path / "rep")]
    res = runner.invoke(app, ["evaluate", "--golden", str(g), "--corpus", str(small_corpus_path), *out])
    assert refused(res, "--golden", "--corpus"), res.output
    res = runner.invoke(app, ["evaluate", "--pairs", str(g / "pairs.csv"), "--split", "dev", *out])
    assert refused(res, "--split", "--pairs"), res.output
    res = runner.invoke(app, ["evaluate", "--golden", str(g), "--split", "all", "--judge-k", "3", *out])
    assert res.exit_code == 2 and "--judge-k" in res.output and "--llm-model" in res.output
    res = runner.invoke(app, ["evaluate", "--golden", str(g), "-s", "bm25", "--fusion", "candidates", *out])
    assert res.exit_code == 2 and "--fusion" in res.output and "none is given" in res.output  # nothing to fuse
    res = runner.invoke(app, ["evaluate", "--golden", str(g), "-s", "hybrid", "--fusion", "whole", *out])
    assert res.exit_code == 2 and "use one of corpus, candidates" in res.output
    assert not (tmp_path / "rep").exists()
    # the hybrids fusing candidates only: tuned and scored that way, and the report says so
    args = ["evaluate", "--golden", str(g), "--split", "all", "-s", "hybrid", "--fusion", "candidates", "--no-plots"]
    res = runner.invoke(app, [*args, *out])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["systems"]["hybrid"]["extra"]["fusion"] == "candidates"


def test_queries_generate_refuses_llm_options_for_the_heuristic_method(tmp_path, small_corpus_path):
    corpus = ["--corpus", str(small_corpus_path)]
    res = runner.invoke(app, ["queries", "generate", *corpus, "--out", str(tmp_path / "g"), "--llm-model", "m"])
    assert res.exit_code == 2 and "--llm-model" in res.output and "--method llm" in res.output
    assert not (tmp_path / "g").exists()


def test_pipeline_refuses_half_an_llm_endpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("PROMPT_RETRIEVER_LLM_BASE_URL", "PROMPT_RETRIEVER_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    res = runner.invoke(app, ["pipeline", "--llm-base-url", "http://127.0.0.1:9/v1", "--until", "corpus"])
    assert res.exit_code == 2 and "--llm-model" in res.output
    assert not (tmp_path / "runs").exists()


def test_pipeline_names_its_run_folder_after_the_corpus_and_keeps_runs_of_other_corpora(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    from prompt_retriever.corpus import load_corpus

    data = Path(__file__).parent / "data"
    monkeypatch.chdir(tmp_path)
    mine, other = tmp_path / "mine.txt", tmp_path / "other.txt"
    shutil.copy(data / "golden12.txt", mine)
    shutil.copy(data / "small_corpus.txt", other)
    runs = tmp_path / "runs"
    res = runner.invoke(app, ["pipeline", "--corpus", str(mine), "--until", "corpus"])
    assert res.exit_code == 0, res.output
    assert len(load_corpus(runs / "mine" / "corpus.jsonl")) == 12 and not (runs / "bundled").exists()
    with mine.open("a") as fh:  # the same corpus, edited: the run resumes in its folder
        fh.write(other.read_text().splitlines()[0] + "\n")
    res = runner.invoke(app, ["pipeline", "--corpus", str(mine), "--until", "corpus"])
    assert res.exit_code == 0, res.output
    assert len(load_corpus(runs / "mine" / "corpus.jsonl")) == 13

    res = runner.invoke(app, ["pipeline", "--corpus", str(other), "--out", "runs/mine", "--until", "corpus"])
    text = res.output.replace("\n", " ")
    assert res.exit_code == 2 and "another corpus" in text and "--out" in text and "--force" in text, text
    assert len(load_corpus(runs / "mine" / "corpus.jsonl")) == 13  # untouched
    res = runner.invoke(app, ["pipeline", "--corpus", str(other), "--out", "runs/mine", "--until", "corpus", "--force"])
    assert res.exit_code == 0, res.output
    assert len(load_corpus(runs / "mine" / "corpus.jsonl")) == 8

    res = runner.invoke(app, ["pipeline", "--until", "corpus"])  # the bundled corpus keeps runs/bundled
    assert res.exit_code == 0, res.output
    assert (runs / "bundled" / "corpus.jsonl").exists()
    res = runner.invoke(app, ["pipeline", "--corpus", str(mine), "--out", "runs/bundled", "--until", "corpus"])
    assert res.exit_code == 2 and "another corpus" in res.output.replace("\n", " ")
