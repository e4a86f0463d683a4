from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from prompt_retriever.pipeline import PipelineConfig, run_pipeline
from prompt_retriever.training import TrainConfig
from prompt_retriever.training.push import PushError, push, upload_plan

DATA = Path(__file__).parent / "data"


def tiny_config(tmp_path: Path, corpus: Path, **kw) -> PipelineConfig:
    return PipelineConfig(
        corpus=[corpus],
        out=tmp_path / "run",
        train=TrainConfig(max_steps=2, batch_size=4, hard_negatives=1, max_rows=16),
        n_bootstrap=200,
        n_permutations=200,
        plots=False,
        **(
            {"test": 0.25, "dev": 0.25}
            | {"reference_corpus": [DATA / "reference20.txt"], "reference_queries": DATA / "reference20.jsonl"}
            | kw
        ),
    )


def test_pipeline_resumes_after_an_interruption_and_skips_unchanged_stages(tmp_path):
    corpus = tmp_path / "golden12.txt"
    shutil.copy(DATA / "golden12.txt", corpus)
    quiet = Console(quiet=True)

    first = run_pipeline(tiny_config(tmp_path, corpus, until="split"), quiet)
    assert first["stopped_after"] == "split"
    assert first["ran"] == ["corpus", "queries", "split"]
    assert not (tmp_path / "run" / "model").exists()

    second = run_pipeline(tiny_config(tmp_path, corpus), quiet)
    assert second["skipped"] == ["corpus", "queries", "split"]
    assert second["ran"] == ["base-eval", "train", "compare", "choose", "report"]
    run = tmp_path / "run"
    for path in (
        "REPORT.md",
        "summary.json",
        "golden/qrels/test.tsv",
        "golden/pairs.csv",
        "reports/base/report.json",
        "reports/compare/summary.json",
        "reports/compare/primary/report.md",
        "model/README.md",
        "model/training_manifest.json",
    ):
        assert (run / path).exists(), path
    summary = json.loads((run / "summary.json").read_text())
    assert summary["headline"]["lines"]
    manifest = json.loads((run / "model" / "training_manifest.json").read_text())
    assert "ndcg@10" in manifest["test"]  # the card records held-out test metrics
    assert "| ndcg@10 |" in (run / "model" / "README.md").read_text()

    # the compare command on the same run: bundled hand-written queries do not fit this corpus, so no second set
    from typer.testing import CliRunner

    from prompt_retriever.cli import app

    res = CliRunner().invoke(
        app,
        [
            "compare",
            "--golden",
            str(run / "golden"),
            "--candidate",
            str(run / "model"),
            "--out",
            str(tmp_path / "cmp"),
            "-s",
            "bm25",
            "-s",
            "hybrid-rrf",
            "--no-plots",
        ],
    )
    assert res.exit_code == 0, res.output
    cmp = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert cmp["second"] is None and "no second query set" in res.output
    names = set(cmp["primary"]["ndcg@10"])
    assert names == {
        "all-MiniLM-L6-v2",
        "fine-tuned (model)",
        "bm25",
        "hybrid-rrf (all-MiniLM-L6-v2)",
        "hybrid-rrf (fine-tuned (model))",
    }
    pairs = {(c["system"], c["baseline"]) for c in cmp["primary"]["comparisons"]}
    assert ("fine-tuned (model)", "all-MiniLM-L6-v2") in pairs and ("fine-tuned (model)", "bm25") in pairs

    third = run_pipeline(tiny_config(tmp_path, corpus), quiet)
    assert third["ran"] == [] and len(third["skipped"]) == 8

    # hybrids fusing candidates only: the same model, the systems compared and chosen again that way
    candidates = run_pipeline(tiny_config(tmp_path, corpus, fusion="candidates"), quiet)
    assert candidates["ran"] == ["base-eval", "compare", "choose", "report"]  # the model is not retrained
    system = json.loads((run / "system.json").read_text())
    if system["kind"] in ("hybrid", "hybrid-adaptive"):
        assert system["fusion"] == "candidates" and "top 50 candidates" in system["label"]
    else:  # not a weighted hybrid: nothing to fuse, nothing recorded
        assert "fusion" not in system
    compared = json.loads((run / "reports" / "compare" / "primary" / "report.json").read_text())
    assert compared["systems"]["hybrid-adaptive (fine-tuned (model))"]["extra"]["fusion"] == "candidates"

    # an edited corpus reruns everything downstream of it
    corpus.write_text(corpus.read_text().replace("every night the lamp", "each night the lamp"))
    fourth = run_pipeline(tiny_config(tmp_path, corpus, until="queries"), quiet)
    assert fourth["ran"] == ["corpus", "queries"]


def test_a_new_split_changes_the_split_fingerprint_so_the_model_is_not_reused(tmp_path):
    """The stages after the split (training, evaluation, the choice) are keyed by the split's fingerprint.
    It hashed the queries only, so `--test 0.5` after a run with 0.25 reused the model trained on prompts
    that the new test split holds: evaluated on its own training data."""
    corpus = tmp_path / "golden12.txt"
    shutil.copy(DATA / "golden12.txt", corpus)
    quiet = Console(quiet=True)
    split = tmp_path / "run" / "stages" / "split.json"
    run_pipeline(tiny_config(tmp_path, corpus, until="split"), quiet)
    first = json.loads(split.read_text())["result"]["fingerprint"]
    assert run_pipeline(tiny_config(tmp_path, corpus, until="split", test=0.5), quiet)["ran"] == ["split"]
    assert json.loads(split.read_text())["result"]["fingerprint"] != first
    assert run_pipeline(tiny_config(tmp_path, corpus, until="split"), quiet)["ran"] == ["split"]
    assert json.loads(split.read_text())["result"]["fingerprint"] == first  # the same split, the same print


def test_pipeline_rejects_bad_corpus_and_unknown_stage(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("<A> </B> <C> </C> <D> </D> prompt broken\n")
    from prompt_retriever.corpus import CorpusError

    with pytest.raises(CorpusError, match="bad.txt:1"):
        run_pipeline(tiny_config(tmp_path, bad), Console(quiet=True))
    with pytest.raises(ValueError, match="unknown stage"):
        run_pipeline(tiny_config(tmp_path, bad, until="nope"), Console(quiet=True))


def fake_model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    (d / "1_Pooling").mkdir(parents=True)
    (d / "modules.json").write_text("[]")
    (d / "README.md").write_text("# card")
    (d / "model.safetensors").write_bytes(b"w" * 100)
    (d / "1_Pooling" / "config.json").write_text("{}")
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "step-1.bin").write_bytes(b"x")
    (d / ".hidden").write_text("no")
    return d


def test_push_dry_run_writes_exactly_what_would_be_uploaded(tmp_path, monkeypatch):
    import hashlib

    for env in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(env, raising=False)
    d = fake_model(tmp_path)
    plan = push(d, "me/prompt-model", dry_run=True, plan_path=tmp_path / "plan.json")
    assert [f["path"] for f in plan["files"]] == [
        "1_Pooling/config.json",
        "README.md",
        "model.safetensors",
        "modules.json",
    ]
    weights = next(f for f in plan["files"] if f["path"] == "model.safetensors")
    assert weights["sha256"] == hashlib.sha256(b"w" * 100).hexdigest() and weights["bytes"] == 100
    assert json.loads((tmp_path / "plan.json").read_text()) == plan
    with pytest.raises(PushError, match="no Hub token"):
        push(d, "me/prompt-model")
    with pytest.raises(PushError, match="must look like"):
        upload_plan(d, "no-slash")
    (d / "README.md").unlink()
    with pytest.raises(PushError, match="no model card"):
        upload_plan(d, "me/x")


def test_push_cli_dry_run(tmp_path):
    from typer.testing import CliRunner

    from prompt_retriever.cli import app

    d = fake_model(tmp_path)
    res = CliRunner().invoke(app, ["push", str(d), "--repo-id", "me/m", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "would upload 4 files" in res.output
    assert (tmp_path / "model.push-plan.json").exists()


class RecordingHubApi:
    """Stands in for huggingface_hub.HfApi (no network here): records what push asks the Hub client to do."""

    calls: list[tuple[str, dict]] = []
    fail_with: str | None = None

    def __init__(self, token=None):
        import huggingface_hub.constants as hf_constants

        online = {"HF_HUB_OFFLINE": hf_constants.HF_HUB_OFFLINE, "env": os.environ.get("HF_HUB_OFFLINE")}
        self.calls.append(("init", {"token": token, **online}))

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))

    def upload_folder(self, **kw):
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        self.calls.append(("upload_folder", kw))


def test_push_uploads_the_planned_files_with_the_token_from_the_environment(tmp_path, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # push switches the client on; restored after the test
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_secret123")
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHubApi)
    RecordingHubApi.calls, RecordingHubApi.fail_with = [], None
    d = fake_model(tmp_path)

    plan = push(d, "me/prompt-model", private=True)
    assert plan["dry_run"] is False
    assert [name for name, _ in RecordingHubApi.calls] == ["init", "create_repo", "upload_folder"]
    # the package runs offline; push switches the Hub client on before it creates one
    assert RecordingHubApi.calls[0][1] == {"token": "hf_secret123", "HF_HUB_OFFLINE": False, "env": "0"}
    assert RecordingHubApi.calls[1][1]["repo_id"] == "me/prompt-model" and RecordingHubApi.calls[1][1]["private"]
    upload = RecordingHubApi.calls[2][1]
    assert upload["repo_id"] == "me/prompt-model" and upload["folder_path"] == str(d)
    # the dry run's files: no checkpoints, no hidden files
    assert upload["allow_patterns"] == ["1_Pooling/config.json", "README.md", "model.safetensors", "modules.json"]

    RecordingHubApi.fail_with = "401 Unauthorized for token hf_secret123"
    with pytest.raises(PushError, match="push to me/prompt-model failed") as err:
        push(d, "me/prompt-model")
    assert "hf_secret123" not in str(err.value) and "***" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no traceback shows the token


def test_pipeline_soup_trains_both_ingredients_and_reports_the_soup(tmp_path):
    corpus = tmp_path / "golden12.txt"
    shutil.copy(DATA / "golden12.txt", corpus)
    quiet = Console(quiet=True)
    first = run_pipeline(tiny_config(tmp_path, corpus, soup_keywords=1, systems=("bm25",)), quiet)
    assert "train" in first["ran"]
    run = tmp_path / "run"
    manifest = json.loads((run / "model" / "training_manifest.json").read_text())
    paths = [i["path"] for i in manifest["soup"]["ingredients"]]
    assert paths == [str(run / "ingredients" / "plain"), str(run / "ingredients" / "keywords-1")]
    assert "ndcg@10" in manifest["test"]  # the compare stage measured the soup itself
    assert "model soup" in (run / "model" / "README.md").read_text()
    assert "a model soup: the weight average of 2 fine-tunes, `plain`, `keywords-1`" in (run / "REPORT.md").read_text()
    state = json.loads((run / "stages" / "train.json").read_text())
    assert state["inputs"]["soup_keywords"] == 1 and state["result"]["steps"] == 4

    again = run_pipeline(tiny_config(tmp_path, corpus, soup_keywords=1, systems=("bm25",)), quiet)
    assert again["ran"] == []


def test_the_pipeline_gives_its_base_and_seed_to_training_and_refuses_a_training_config_that_differs():
    import dataclasses

    cfg = PipelineConfig(base="my/model", seed=7, train=TrainConfig(max_steps=2))
    assert (cfg.train.base, cfg.train.seed, cfg.train.max_steps) == ("my/model", 7, 2)
    same = PipelineConfig(base="my/model", seed=7, train=TrainConfig(base="my/model", seed=7))
    assert same.train == dataclasses.replace(cfg.train, max_steps=-1)
    with pytest.raises(ValueError, match="base is 'my/model' but its training config's is 'other/model'"):
        PipelineConfig(base="my/model", train=TrainConfig(base="other/model"))
    with pytest.raises(ValueError, match="seed is 42 but its training config's is 3"):
        PipelineConfig(train=TrainConfig(seed=3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.base = "another"  # one source: the config is not changed after it was checked


def test_the_stage_names_are_the_pipeline_tables():
    from prompt_retriever.pipeline import PIPELINE, STAGES

    assert tuple(stage.name for stage in PIPELINE) == STAGES
    assert STAGES[0] == "corpus" and STAGES[-1] == "report" and len(set(STAGES)) == len(STAGES)
