"""With an LLM endpoint, the pipeline writes natural-language queries of the collection's own prompts and
uses them as its natural family: train rows, dev for choosing, test for the report (a real local server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from llm_server import FakeChatServer
from rich.console import Console
from test_llm_natural import natural_responder

from prompt_retriever.corpus import load_corpus
from prompt_retriever.evaluation.choose import families
from prompt_retriever.golden import GoldenSet
from prompt_retriever.pipeline import PipelineConfig, run_pipeline
from prompt_retriever.training import TrainConfig

DATA = Path(__file__).parent / "data"


def test_llm_natural_queries_are_a_family_of_train_dev_and_test(tmp_path):
    corpus = tmp_path / "golden12.txt"
    shutil.copy(DATA / "golden12.txt", corpus)
    titles = [p.title for p in load_corpus(corpus)]
    with FakeChatServer(natural_responder(titles)) as srv:
        cfg = PipelineConfig(
            corpus=[corpus],
            out=tmp_path / "run",
            test=0.25,
            dev=0.25,
            llm_base_url=srv.base_url,
            llm_model="tiny",
            train=TrainConfig(max_steps=2, batch_size=4, hard_negatives=1, max_rows=16),
            n_bootstrap=200,
            n_permutations=200,
            plots=False,
        )
        run_pipeline(cfg, Console(quiet=True))
        assert len(srv.requests) == 12  # one completion per prompt

    run = tmp_path / "run"
    gs = GoldenSet.load(run / "golden")
    for split in ("train", "dev", "test"):
        assert "natural" in families(gs, split), split
    assert len(gs.manifest["styles"]) == 72  # six styles of twelve prompts, each query's style kept
    info = json.loads((run / "system.json").read_text())
    assert info["chosen_on"]["families"] == ["natural", "template"]  # the collection's own, no reference
    assert "reference" not in info and set(info["test"]) == {"natural", "template"}
    first = (run / "REPORT.md").read_text().split("\n\n")[1]
    assert first.startswith("Measured on template queries") and "an LLM wrote for the test prompts" in first
    assert "not measured" not in first
