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
