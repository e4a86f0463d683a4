from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pytest

from prompt_retriever.corpus import load_corpus
from prompt_retriever.encoding.encoder import Encoder
from prompt_retriever.golden.heuristic import HeuristicConfig, generate_heuristic
from prompt_retriever.golden.splits import split_by_prompt
from prompt_retriever.training.batching import batch_sampler_factory, compatible, plan_batches
from prompt_retriever.training.config import TrainConfig
from prompt_retriever.training.data import (
    BaseScores,
    TrainRow,
    assert_no_heldout_in_training,
    mine_hard_negatives,
    select_rows,
    training_rows,
)
from prompt_retriever.training.train import train

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def gs():
    prompts = load_corpus(DATA / "golden12.txt")
    return split_by_prompt(generate_heuristic(prompts, HeuristicConfig(seed=1)), test=0.25, dev=0.25, seed=2)


def relevant_sets(gs):
    return {qid: {pid for pid, g in rel.items() if g > 0} for qid, rel in gs.qrels.items()}


def test_rows_come_from_train_queries_and_train_prompts_only(gs):
    rows = training_rows(gs, TrainConfig(max_rows=None))
    split_of = gs.prompt_split()
    train_q = set(gs.splits["train"])
    assert rows
    assert all(r.query_id in train_q and split_of[r.positive_id] == "train" for r in rows)
    # genre queries contribute several positives, capped per query
    per_query = {}
    for r in rows:
        per_query[r.query_id] = per_query.get(r.query_id, 0) + 1
    assert max(per_query.values()) == 1  # default: one positive per query
    multi = training_rows(gs, TrainConfig(max_positives_per_query=4))
    assert 1 < max(sum(r.query_id == q for r in multi) for q in per_query) <= 4


def base_scores(gs, rows):
    return BaseScores.compute(rows, gs, Encoder("all-MiniLM-L6-v2"), TrainConfig().template)


def test_row_budget_is_a_seeded_sample(gs):
    rows = training_rows(gs, TrainConfig())
    picked = select_rows(rows, TrainConfig(max_rows=10))
    assert len(picked) == 10 and picked == select_rows(rows, TrainConfig(max_rows=10))
    assert picked != select_rows(rows, TrainConfig(max_rows=10, seed=7))
    assert all(r in rows for r in picked)
    assert select_rows(rows, TrainConfig(max_rows=None)) == rows


def test_hard_negatives_are_never_relevant_nor_held_out(gs):
    cfg = TrainConfig(max_rows=None, hard_negatives=3, relative_margin=0.05)
    rows = training_rows(gs, cfg)
    rows = mine_hard_negatives(rows, gs, base_scores(gs, rows), cfg)
    split_of = gs.prompt_split()
    rel = relevant_sets(gs)
    assert any(r.negative_ids for r in rows)
    assert len({len(r.negative_ids) for r in rows}) == 1
    for r in rows:
        assert not set(r.negative_ids) & rel[r.query_id]
        assert all(split_of[pid] == "train" for pid in r.negative_ids)
        assert r.positive_id not in r.negative_ids
    assert_no_heldout_in_training(rows, gs)


def test_margin_excludes_negatives_scoring_near_the_positive(gs):
    base = base_scores(gs, training_rows(gs, TrainConfig()))
    loose_cfg = TrainConfig(hard_negatives=8, relative_margin=-1.0)
    strict_cfg = TrainConfig(hard_negatives=8, relative_margin=0.9)
    loose = mine_hard_negatives(training_rows(gs, loose_cfg), gs, base, loose_cfg)
    strict = mine_hard_negatives(training_rows(gs, strict_cfg), gs, base, strict_cfg)
    assert sum(len(r.negative_ids) for r in strict) < sum(len(r.negative_ids) for r in loose)


def test_batches_hold_no_false_negatives():
    rel = {"qa": {"p1", "p2", "p3"}, "qb": {"p2"}, "qc": {"p4"}, "qd": {"p5"}, "qe": {"p6", "p1"}}
    rows = [
        TrainRow("qa", "horror prompt", "p1", ["p9"]),
        TrainRow("qa", "horror prompt", "p3", ["p8"]),
        TrainRow("qb", "lighthouse keeper", "p2", ["p4"]),  # p2 is relevant to qa; p4 relevant to qc
        TrainRow("qc", "night train", "p4", ["p7"]),
        TrainRow("qd", "bees", "p5", ["p6"]),  # p6 relevant to qe
        TrainRow("qe", "HORROR PROMPT", "p6", ["p7"]),  # same query text as qa, other case
    ]
    assert not compatible(rows[0], rows[1], rel)  # same query
    assert not compatible(rows[0], rows[2], rel)  # positive of b relevant to a
    assert not compatible(rows[2], rows[3], rel)  # negative of b relevant to c
    assert not compatible(rows[0], rows[5], rel)  # same query text
    assert compatible(rows[0], rows[3], rel)
    for seed in range(20):
        batches = plan_batches(rows, rel, batch_size=4, seed=seed)
        assert sorted(i for b in batches for i in b) == list(range(len(rows)))
        for b in batches:
            assert len(b) <= 4
            for i, j in combinations(b, 2):
                assert compatible(rows[i], rows[j], rel)


def test_sampler_on_real_rows(gs):
    from datasets import Dataset

    cfg = TrainConfig(max_rows=None)
    rows = training_rows(gs, cfg)
    rows = mine_hard_negatives(rows, gs, base_scores(gs, rows), cfg)
    rel = relevant_sets(gs)
    Sampler = batch_sampler_factory(rows, rel)
    sampler = Sampler(Dataset.from_dict({"anchor": [r.query for r in rows]}), batch_size=8, drop_last=False, seed=3)
    first = list(sampler)
    assert len(first) == len(sampler)
    assert sorted(i for b in first for i in b) == list(range(len(rows)))
    for b in first:
        for i, j in combinations(b, 2):
            assert compatible(rows[i], rows[j], rel)
    sampler.set_epoch(1)
    assert list(sampler) != first  # reshuffled per epoch, deterministically
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_tiny_fine_tune_produces_a_loadable_model_folder(tmp_path, gs):
    from sentence_transformers import SentenceTransformer

    cfg = TrainConfig(max_steps=3, batch_size=4, hard_negatives=1, max_rows=24)
    result = train(gs, tmp_path / "model", cfg, progress=False, golden_dir="golden12")
    out = tmp_path / "model"
    assert result.output_dir == out and result.steps == 3
    for name in ("modules.json", "model.safetensors", "README.md", "training_manifest.json", "training_curves.png"):
        assert (out / name).exists(), name
    card = (out / "README.md").read_text()
    assert "MultipleNegativesRankingLoss" in card and "base_model: all-MiniLM-L6-v2" in card
    assert "Intended use" in card and f"| learning rate | {cfg.learning_rate:g} |" in card
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert manifest["golden_fingerprint"] == gs.fingerprint()
    assert manifest["hyperparameters"]["seed"] == 42 and manifest["versions"]["torch"].startswith("2.13.0")
    assert not list(tmp_path.glob(".model.training-*"))  # the work folder is gone
    model = SentenceTransformer(str(out), device="cpu")
    assert model.encode(["a lighthouse"]).shape == (1, 384)


def test_cached_loss_option_trains(tmp_path, gs):
    cfg = TrainConfig(
        max_steps=1, batch_size=4, hard_negatives=1, max_rows=8, loss="cached-mnrl", cached_mini_batch_size=2
    )
    train(gs, tmp_path / "m", cfg, progress=False)
    assert "CachedMultipleNegativesRankingLoss" in (tmp_path / "m" / "README.md").read_text()
    with pytest.raises(ValueError, match="unknown loss"):
        train(gs, tmp_path / "m2", TrainConfig(max_steps=1, loss="triplet", max_rows=8), progress=False)


def test_early_stopping_ends_training_when_dev_ndcg_stops_improving(tmp_path, gs):
    # lr 0: the dev metric never improves, so with patience 1 training stops at the second evaluation
    # (the first sets the best) instead of running all 12 steps.
    cfg = TrainConfig(
        max_steps=12,
        batch_size=4,
        hard_negatives=1,
        max_rows=24,
        learning_rate=0.0,
        evals_per_epoch=6,
        early_stopping_patience=1,
    )
    result = train(gs, tmp_path / "m", cfg, progress=False)
    evals = [h for h in result.history if "eval_dev_ndcg@10" in h]
    assert len(evals) == 2 and evals[0]["eval_dev_ndcg@10"] == evals[1]["eval_dev_ndcg@10"]
    assert result.steps == evals[1]["step"] < 12
    assert (tmp_path / "m" / "modules.json").exists()


class _FixedVectors:
    """A stand-in model: each text's embedding comes from a table (the `encode` arguments an Encoder passes)."""

    def __init__(self, table):
        self.table = table

    def encode(self, texts, *, batch_size, normalize_embeddings, convert_to_numpy, show_progress_bar):
        import numpy as np

        assert normalize_embeddings and convert_to_numpy and not show_progress_bar
        vecs = np.array([self.table[t] for t in texts], dtype=np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_checkpoint_evaluator_uses_graded_relevance_and_trec_eval_ties():
    from prompt_retriever.corpus import Prompt
    from prompt_retriever.evaluation.metrics import ndcg
    from prompt_retriever.training.checkpoint_eval import DevNDCGEvaluator

    prompts = [Prompt(id=f"p{i}", title=f"T{i}", genre="horror", theme="grief", text=f"text {i}") for i in range(3)]
    docs = {f"T{i}. text {i}": v for i, v in enumerate([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])}
    model = _FixedVectors(docs | {"query": [1.0, 0.0]})
    qrels = {"q": {"p0": 1, "p1": 2, "p2": 0}}  # the grade-2 prompt ranks second: binary NDCG would be 1
    evaluator = DevNDCGEvaluator([("q", "query")], prompts, qrels, "title_text")
    assert evaluator.primary_metric == "dev_ndcg@10" and evaluator.greater_is_better
    got = evaluator(model)
    assert got == {"dev_ndcg@10": pytest.approx(ndcg(["p0", "p1", "p2"], qrels["q"], 10))}
    assert got["dev_ndcg@10"] < 1.0


def test_checkpoint_score_is_evaluations_dense_ndcg_on_dev(gs):
    from prompt_retriever.encoding.models import load_model
    from prompt_retriever.evaluation.evaluate import evaluate_systems
    from prompt_retriever.evaluation.systems import DenseSystem
    from prompt_retriever.training.train import DEV_METRIC, dev_evaluator

    template = TrainConfig().template
    score = dev_evaluator(gs, template)(load_model("all-MiniLM-L6-v2"))[DEV_METRIC]
    dense = DenseSystem("all-MiniLM-L6-v2", gs.corpus, template=template)
    report = evaluate_systems(gs, [dense], split="dev", n_bootstrap=10, n_permutations=10)
    assert 0.0 < score == pytest.approx(report.systems[0].estimates["ndcg@10"].mean, abs=1e-9)


def test_training_keeps_and_saves_the_checkpoint_with_the_best_dev_ndcg(tmp_path, gs):
    from sentence_transformers import SentenceTransformer

    from prompt_retriever.training.train import BEST_METRIC, DEV_METRIC, dev_evaluator

    cfg = TrainConfig(max_steps=6, batch_size=4, hard_negatives=1, max_rows=24, learning_rate=2e-4, evals_per_epoch=3)
    result = train(gs, tmp_path / "m", cfg, progress=False)
    evals = [h[BEST_METRIC] for h in result.history if BEST_METRIC in h]
    assert len(evals) >= 2 and result.best_dev_ndcg == max(evals)
    saved = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    assert dev_evaluator(gs, cfg.template)(saved)[DEV_METRIC] == pytest.approx(max(evals), abs=1e-6)
    manifest = json.loads((tmp_path / "m" / "training_manifest.json").read_text())
    assert manifest["dev"]["ndcg@10_best"] == result.best_dev_ndcg
    card = (tmp_path / "m" / "README.md").read_text()
    assert "best dev NDCG@10 (graded, the project's trec_eval-exact metric" in card


# Runs the `train` command in a fresh interpreter, so warnings and log records reach the real stderr (pytest
# would capture them in-process). A trainer callback raises a warning and logs one mid-training.
TRAIN_WITH_A_WARNING = """
import importlib, logging, sys, warnings
from transformers import TrainerCallback
t = importlib.import_module("prompt_retriever.training.train")

class Warn(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            warnings.warn("a warning from inside training")
            logging.getLogger("prompt_retriever.test").warning("a logged warning from inside training")

original = t.training_callbacks
t.training_callbacks = lambda cfg, evaluator: [*original(cfg, evaluator), Warn()]
from prompt_retriever.cli import app
app(sys.argv[1:], prog_name="prompt-retriever")
"""


def test_train_command_shows_one_bar_and_warnings_but_no_library_bars_or_log_dicts(tmp_path, gs):
    import subprocess
    import sys

    gs.save(tmp_path / "golden")
    args = ["train", "--golden", str(tmp_path / "golden"), "--out", str(tmp_path / "m"), "--max-steps", "2"]
    args += ["--batch-size", "4", "--hard-negatives", "1", "--max-rows", "16"]
    res = subprocess.run(
        [sys.executable, "-c", TRAIN_WITH_A_WARNING, *args], capture_output=True, text=True, timeout=600
    )
    console = res.stdout + res.stderr
    assert res.returncode == 0, console
    for noise in ("Loading weights", "Batches:", "{'loss'", "{'eval_", "Computing widget examples", "Writing model"):
        assert noise not in console, f"{noise!r} printed:\n{console}"
    assert "UserWarning: a warning from inside training" in console
    assert "a logged warning from inside training" in console
    assert "training" in res.stderr and "2/2 steps" in res.stderr  # the one bar, its final state, on stderr
    assert "trained 16 rows, 2 steps in" in res.stdout  # the command's summary line
