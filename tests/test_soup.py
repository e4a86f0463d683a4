from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.corpus import load_corpus
from prompt_retriever.golden.heuristic import HeuristicConfig, generate_heuristic
from prompt_retriever.golden.splits import split_by_prompt
from prompt_retriever.training import TrainConfig, update_card_with_test
from prompt_retriever.training.soup import (
    SoupError,
    average_state_dicts,
    ingredient_configs,
    make_soup,
    train_soup,
    trained_with,
)

DATA = Path(__file__).parent / "data"
TINY = TrainConfig(max_steps=2, batch_size=4, hard_negatives=1, max_rows=16)


@pytest.fixture(scope="module")
def gs():
    prompts = load_corpus(DATA / "golden12.txt")
    return split_by_prompt(generate_heuristic(prompts, HeuristicConfig(seed=1)), test=0.25, dev=0.25, seed=2)


@pytest.fixture(scope="module")
def soup_run(tmp_path_factory, gs):
    """The soup recipe on a tiny budget: a plain fine-tune, one with keyword queries, and their average."""
    root = tmp_path_factory.mktemp("soup")
    logs: list[str] = []
    result = train_soup(gs, root / "soup", TINY, 1, progress=False, golden_dir="golden12", log=logs.append)
    return root, result, logs


def load_state(path: Path) -> dict:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu").state_dict()


def test_average_is_the_weighted_mean_of_float_weights_and_keeps_the_rest():
    a = {"w": torch.tensor([1.0, 3.0]), "ids": torch.tensor([0, 1])}
    b = {"w": torch.tensor([3.0, 7.0]), "ids": torch.tensor([0, 1])}
    assert torch.allclose(average_state_dicts([a, b], [1, 1])["w"], torch.tensor([2.0, 5.0]))
    assert torch.allclose(average_state_dicts([a, b], [3, 1])["w"], torch.tensor([1.5, 4.0]))
    assert torch.equal(average_state_dicts([a, b], [1, 1])["ids"], torch.tensor([0, 1]))
    with pytest.raises(SoupError, match="other weight names"):
        average_state_dicts([a, {"w": b["w"]}], [1, 1])
    with pytest.raises(SoupError, match="different shapes"):
        average_state_dicts([a, {"w": torch.zeros(3), "ids": b["ids"]}], [1, 1])
    with pytest.raises(SoupError, match="non-float weight ids differs"):
        average_state_dicts([a, {"w": b["w"], "ids": torch.tensor([1, 0])}], [1, 1])


def test_recipe_is_the_plain_fine_tune_and_one_with_keyword_queries():
    configs = ingredient_configs(TINY, 2)
    assert list(configs) == ["plain", "keywords-2"]
    assert configs["plain"] == TINY and configs["keywords-2"].keyword_augment == 2
    assert configs["keywords-2"].seed == TINY.seed and configs["keywords-2"].learning_rate == TINY.learning_rate
    with pytest.raises(SoupError, match="leave --augment-keywords at 0"):
        ingredient_configs(TrainConfig(keyword_augment=1), 2)
    with pytest.raises(SoupError, match="at least 1"):
        ingredient_configs(TINY, 0)


def test_soup_folder_is_the_average_of_its_ingredients_with_provenance(soup_run, gs):
    from sentence_transformers import SentenceTransformer

    root, result, logs = soup_run
    plain, kw = root / "soup.ingredients" / "plain", root / "soup.ingredients" / "keywords-1"
    assert [i.path for i in result.ingredients] == [plain, kw]
    assert logs == [
        "soup ingredient 1/2 plain: training",
        "soup ingredient 2/2 keywords-1: training",
    ]
    sa, sb, ss = load_state(plain), load_state(kw), load_state(root / "soup")
    changed = [k for k in ss if sa[k].is_floating_point() and not torch.equal(sa[k], sb[k])]
    assert changed  # the two ingredients really differ, so the check below means something
    for key in changed:
        assert torch.allclose(ss[key], (sa[key] + sb[key]) / 2, atol=1e-6), key

    manifest = json.loads((root / "soup" / "training_manifest.json").read_text())
    ings = manifest["soup"]["ingredients"]
    assert [i["weight"] for i in ings] == [0.5, 0.5]
    assert ings[0]["augmentation"] is None and ings[1]["augmentation"]["per_prompt"] == 1
    assert ings[1]["hyperparameters"]["keyword_augment"] == 1
    assert manifest["golden_fingerprint"] == gs.fingerprint()
    assert manifest["steps"] == 4 and manifest["training_rows"] == sum(i["training_rows"] for i in ings)
    assert 0.0 < manifest["dev"]["ndcg@10_best"] == result.dev_ndcg <= 1.0
    card = (root / "soup" / "README.md").read_text()
    assert "model soup" in card and "| 2 | 0.50 | +" in card and "(not measured yet)" in card
    model = SentenceTransformer(str(root / "soup"), device="cpu")
    assert model.encode(["a haunted lighthouse"]).shape == (1, 384)

    # the pipeline's compare stage records test metrics in the soup's own card
    update_card_with_test(root / "soup", {"ndcg@10": 0.5})
    card = (root / "soup" / "README.md").read_text()
    assert "| ndcg@10 | 0.5000 |" in card and "model soup" in card


def test_trained_ingredients_are_reused_when_config_and_data_match(soup_run, gs):
    root, _, _ = soup_run
    weights = root / "soup.ingredients" / "plain" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    logs: list[str] = []
    train_soup(gs, root / "soup2", TINY, 1, ingredients_dir=root / "soup.ingredients", progress=False, log=logs.append)
    assert all("already trained with this config, reused" in line for line in logs) and len(logs) == 2
    assert weights.stat().st_mtime_ns == before
    s2, s1 = load_state(root / "soup2"), load_state(root / "soup")
    assert s2.keys() == s1.keys() and all(torch.equal(s2[k], s1[k]) for k in s1)


def test_an_ingredient_is_reused_only_for_the_same_config_base_data_and_split(soup_run, gs, tmp_path):
    root, _, _ = soup_run
    plain = root / "soup.ingredients" / "plain"
    assert trained_with(plain, TINY, gs)
    assert not trained_with(plain, dataclasses.replace(TINY, seed=1), gs)
    assert not trained_with(plain, dataclasses.replace(TINY, learning_rate=1e-4), gs)
    resplit = copy.deepcopy(gs)
    resplit.manifest["split"]["test"] = 0.5  # same queries, other held-out prompts
    assert resplit.fingerprint() == gs.fingerprint() and not trained_with(plain, TINY, resplit)
    other_base = tmp_path / "plain"
    shutil.copytree(plain, other_base)
    m = json.loads((other_base / "training_manifest.json").read_text())
    m["base_fingerprint"] = "sentence-transformers/all-MiniLM-L6-v2@0000000000000000"
    (other_base / "training_manifest.json").write_text(json.dumps(m))
    assert not trained_with(other_base, TINY, gs)
    with pytest.raises(SoupError, match="another split of this golden set"):
        make_soup([plain, root / "soup.ingredients" / "keywords-1"], tmp_path / "s", gs=resplit)


def test_soup_refuses_ingredients_it_cannot_vouch_for(soup_run, tmp_path):
    root, _, _ = soup_run
    plain = root / "soup.ingredients" / "plain"
    other = tmp_path / "other"
    shutil.copytree(root / "soup.ingredients" / "keywords-1", other)
    m = json.loads((other / "training_manifest.json").read_text())
    m["golden_fingerprint"] = "0000000000000000"  # trained on another golden set: might have seen test prompts
    (other / "training_manifest.json").write_text(json.dumps(m))
    with pytest.raises(SoupError, match=r"other differs .* in golden_fingerprint"):
        make_soup([plain, other], tmp_path / "out")
    m["golden_fingerprint"] = json.loads((plain / "training_manifest.json").read_text())["golden_fingerprint"]
    m["split"]["seed"] = 99
    (other / "training_manifest.json").write_text(json.dumps(m))
    with pytest.raises(SoupError, match=r"other differs .* in split"):
        make_soup([plain, other], tmp_path / "out")
    (other / "training_manifest.json").unlink()
    with pytest.raises(SoupError, match="no training_manifest.json"):
        make_soup([plain, other], tmp_path / "out")
    with pytest.raises(SoupError, match="at least two"):
        make_soup([plain], tmp_path / "out")
    shutil.rmtree(other)
    with pytest.raises(SoupError, match="2 models but 1 weights"):
        make_soup([plain, plain], tmp_path / "out", [1.0])
    kw = root / "soup.ingredients" / "keywords-1"
    with pytest.raises(SoupError, match="positive numbers: nan"):
        make_soup([plain, kw], tmp_path / "out", [1.0, float("nan")])
    with pytest.raises(SoupError, match="given twice"):
        make_soup([plain, plain], tmp_path / "out")
    with pytest.raises(SoupError, match="would overwrite the ingredient"):
        make_soup([plain, kw], root / "soup.ingredients")
    shutil.copytree(kw, other)
    m = json.loads((other / "training_manifest.json").read_text())
    m["hyperparameters"]["template"] = "text"
    (other / "training_manifest.json").write_text(json.dumps(m))
    with pytest.raises(SoupError, match="embeds prompts with template 'text'"):
        make_soup([plain, other], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_soup_and_train_commands(soup_run, tmp_path):
    root, _, _ = soup_run
    ing = root / "soup.ingredients"
    res = CliRunner().invoke(
        app, ["soup", str(ing / "plain"), str(ing / "keywords-1"), "--out", str(tmp_path / "s"), "-w", "3", "-w", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "soup of 2 models; model:" in res.output
    weights = [
        i["weight"] for i in json.loads((tmp_path / "s" / "training_manifest.json").read_text())["soup"]["ingredients"]
    ]
    assert weights == [0.75, 0.25]

    res = CliRunner().invoke(
        app,
        [
            "train",
            "--golden",
            str(tmp_path),
            "--out",
            str(tmp_path / "m"),
            "--augment-keywords",
            "1",
            "--soup-keywords",
            "2",
        ],
    )
    assert res.exit_code == 2 and "leave --augment-keywords at 0" in res.output
    res = CliRunner().invoke(app, ["soup", str(ing / "plain"), str(tmp_path), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "not a sentence-transformers model folder" in res.output
