from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompt_retriever.corpus import load_corpus
from prompt_retriever.golden.augment import AUGMENT_KIND, augment_keyword_queries
from prompt_retriever.golden.heuristic import HeuristicConfig, generate_heuristic
from prompt_retriever.golden.keywords import TfidfKeywords
from prompt_retriever.golden.splits import check_leakage, split_by_prompt
from prompt_retriever.training import TrainConfig, train, training_rows

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def gs():
    prompts = load_corpus(DATA / "golden12.txt")
    return split_by_prompt(generate_heuristic(prompts, HeuristicConfig(seed=1)), test=0.25, dev=0.25, seed=2)


def added_queries(original, augmented):
    before = {q.id for q in original.queries}
    return [q for q in augmented.queries if q.id not in before]


def test_extra_keyword_queries_come_from_train_prompts_and_join_train_only(gs):
    aug = augment_keyword_queries(gs, 3, seed=5)
    new = added_queries(gs, aug)
    split_of = gs.prompt_split()
    train_prompts = [p for p in gs.corpus if split_of[p.id] == "train"]
    assert 0 < len(new) <= 3 * len(train_prompts)
    tfidf = TfidfKeywords([p.text for p in gs.corpus])
    by_id = gs.prompt_by_id
    for q in new:
        assert q.kind == AUGMENT_KIND and split_of[q.source_id] == "train"
        assert aug.qrels[q.id] == {q.source_id: 2}
        words = q.text.split()
        assert 2 <= len(words) <= 3 and set(words) <= set(tfidf.top(by_id[q.source_id].text, 8))
        assert q.id in aug.splits["train"]
    assert aug.splits["dev"] == gs.splits["dev"] and aug.splits["test"] == gs.splits["test"]
    texts = [q.text.casefold() for q in aug.queries]
    assert len(texts) == len(set(texts))  # never repeats a golden query, so no text crosses splits
    check_leakage(aug)
    assert aug.manifest["augmentation"]["added"] == len(new)


def test_augmentation_is_seeded_and_leaves_the_input_alone(gs):
    n = len(gs.queries)
    a = [q.text for q in added_queries(gs, augment_keyword_queries(gs, 2, seed=5))]
    assert a == [q.text for q in added_queries(gs, augment_keyword_queries(gs, 2, seed=5))]
    assert a != [q.text for q in added_queries(gs, augment_keyword_queries(gs, 2, seed=6))]
    assert len(gs.queries) == n and "augmentation" not in gs.manifest
    assert augment_keyword_queries(gs, 0) is gs


def test_training_with_augmentation_uses_the_extra_rows_and_records_them(tmp_path, gs):
    cfg = TrainConfig(max_steps=2, batch_size=4, hard_negatives=1, max_rows=None, keyword_augment=2)
    plain = len(training_rows(gs, cfg))
    result = train(gs, tmp_path / "m", cfg, progress=False, golden_dir="golden12")
    added = augment_keyword_queries(gs, 2, seed=cfg.seed).manifest["augmentation"]["added"]
    assert result.rows == plain + added
    manifest = json.loads((tmp_path / "m" / "training_manifest.json").read_text())
    assert manifest["golden_fingerprint"] == gs.fingerprint()  # the data as loaded, not the augmented copy
    assert manifest["augmentation"]["added"] == added and manifest["hyperparameters"]["keyword_augment"] == 2
    assert f"augmented with {added} extra keyword queries" in (tmp_path / "m" / "README.md").read_text()
