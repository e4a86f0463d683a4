"""Model soups: one model whose weights are the average of several fine-tunes of the same base.

Averaging the weights of models fine-tuned from one pre-trained model (a "uniform soup", Wortsman et
al. 2022, https://arxiv.org/abs/2203.05482) often beats each of them, at no extra inference cost: the
soup is an ordinary sentence-transformers folder. Here it combines two fine-tunes that are good at
different query kinds: the plain fine-tune (genre, theme and title queries) and one trained with extra
keyword queries (`augment.py`), which is better on keyword queries and worse on titles. Each alone
trades one kind for another; their average keeps most of both (measured: docs/experiments.md, "Model soups").

Honesty rules, checked before averaging:
- every ingredient is a prompt-retriever fine-tune with a `training_manifest.json`;
- all share the base model (fingerprint), the golden set (fingerprint) and its split, so no
  ingredient has seen a prompt that is held out for the others;
- all have the same modules and the same weight names and shapes.
The soup's manifest lists every ingredient (hyperparameters, data, dev score) and its own dev NDCG@10.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ..errors import SoupError
from ..fileio import atomic_dir, atomic_write_json, atomic_write_text
from ..golden.goldenset import GoldenSet
from ..progress import quiet_libraries
from .cards import soup_card
from .config import TrainConfig
from .train import DEV_METRIC, dev_evaluator, train

SAME = ("base_fingerprint", "golden_fingerprint", "corpus_fingerprint", "split")


@dataclass
class Ingredient:
    path: Path
    weight: float
    manifest: dict


@dataclass
class SoupResult:
    output_dir: Path
    ingredients: list[Ingredient]
    dev_ndcg: float | None
    manifest: dict  # as written to the soup's training_manifest.json


def read_ingredient(path: str | Path, weight: float) -> Ingredient:
    d = Path(path)
    mpath = d / "training_manifest.json"
    if not (d / "modules.json").exists():
        raise SoupError(f"{d}: not a sentence-transformers model folder (no modules.json)")
    if not mpath.exists():
        raise SoupError(
            f"{d}: no training_manifest.json; a soup only averages prompt-retriever fine-tunes, "
            "whose training data can be checked against the held-out split"
        )
    try:
        manifest = json.loads(mpath.read_text())
    except ValueError as exc:
        raise SoupError(f"{mpath}: not valid JSON ({exc})") from None
    return Ingredient(d, weight, manifest)


def check_compatible(ingredients: Sequence[Ingredient]) -> None:
    """Raise SoupError naming the first ingredient that differs from the first in base, data or modules."""
    if len(ingredients) < 2:
        raise SoupError("a soup needs at least two models")
    if bad := [i for i in ingredients if not (math.isfinite(i.weight) and i.weight > 0)]:
        raise SoupError(f"soup weights must be positive numbers: {bad[0].weight!r} for {bad[0].path}")
    if len({i.path.resolve() for i in ingredients}) != len(ingredients):
        raise SoupError("the same model folder is given twice")
    first = ingredients[0]
    for other in ingredients[1:]:
        for key in SAME:
            a, b = first.manifest.get(key), other.manifest.get(key)
            if key == "split":
                a, b = split_rule(a), split_rule(b)
            if a != b:
                raise SoupError(
                    f"{other.path} differs from {first.path} in {key} ({b!r} vs {a!r}): "
                    "soup ingredients must be fine-tuned from one base on one golden set and split"
                )
        a, b = (i.manifest.get("hyperparameters", {}).get("template") for i in (first, other))
        if a != b:
            raise SoupError(f"{other.path} embeds prompts with template {b!r}, {first.path} with {a!r}")
        for name in ("modules.json", "sentence_bert_config.json"):
            fa, fb = first.path / name, other.path / name
            if (fa.read_text() if fa.exists() else None) != (fb.read_text() if fb.exists() else None):
                raise SoupError(f"{other.path} has another {name} than {first.path}: not the same kind of model")


def split_rule(split: dict | None) -> dict:
    """A split as the manifests record it (rule, fractions, seed), without the prompt lists."""
    return {k: v for k, v in (split or {}).items() if k != "prompts"}


def data_mismatch(manifest: dict, gs: GoldenSet) -> str | None:
    """Why a model with this training manifest was not trained on `gs` as it is split now (None: it was)."""
    have, want = manifest.get("golden_fingerprint"), gs.fingerprint()
    if have != want:
        return f"was trained on golden set {have}, not on the one given ({want})"
    if split_rule(manifest.get("split")) != split_rule(gs.manifest.get("split")):
        return "was trained on another split of this golden set than its current one"
    return None


def average_state_dicts(
    states: Sequence[Mapping], weights: Sequence[float], names: Sequence[str] | None = None
) -> dict:
    """Weighted mean of floating-point tensors; other tensors (ids, buffers) must be equal and are kept.
    `names` label the models in errors (default: model 1, model 2, ...)."""
    import torch

    if len(states) != len(weights) or not states:
        raise SoupError("need one weight per state dict")
    names = list(names) if names else [f"model {n}" for n in range(1, len(states) + 1)]
    total = float(sum(weights))
    keys = list(states[0])
    out = {}
    for name, sd in zip(names[1:], states[1:], strict=True):
        if list(sd) != keys:
            differ = sorted(set(keys) ^ set(sd))[:3]
            raise SoupError(f"{name} has other weight names than {names[0]}, e.g. {differ}")
    for key in keys:
        tensors = [sd[key] for sd in states]
        shapes = [tuple(t.shape) for t in tensors]
        if len(set(shapes)) != 1:
            detail = ", ".join(f"{n} {sh}" for n, sh in zip(names, shapes, strict=True))
            raise SoupError(f"weight {key} has different shapes: {detail}")
        if tensors[0].is_floating_point():
            acc = torch.zeros_like(tensors[0], dtype=torch.float64)
            for t, w in zip(tensors, weights, strict=True):
                acc += t.to(torch.float64) * (w / total)
            out[key] = acc.to(tensors[0].dtype)
        else:
            if differ := [n for n, t in zip(names[1:], tensors[1:], strict=True) if not torch.equal(t, tensors[0])]:
                raise SoupError(f"non-float weight {key} differs between {names[0]} and {differ[0]}; cannot average it")
            out[key] = tensors[0].clone()
    return out


def make_soup(
    models: Sequence[str | Path],
    out_dir: str | Path,
    weights: Sequence[float] | None = None,
    *,
    gs: GoldenSet | None = None,
) -> SoupResult:
    """Average `models` (weights default to equal) into a new model folder at `out_dir`.

    With `gs` (the golden set the ingredients were trained on) the soup's dev NDCG@10 is measured
    and recorded. The folder is built beside `out_dir` and renamed into place (`fileio.atomic_dir`).
    """
    from sentence_transformers import SentenceTransformer

    weights = list(weights) if weights is not None else [1.0] * len(models)
    if len(weights) != len(models):
        raise SoupError(f"{len(models)} models but {len(weights)} weights")
    ingredients = [read_ingredient(m, w) for m, w in zip(models, weights, strict=True)]
    check_compatible(ingredients)
    out = Path(out_dir)
    for i in ingredients:
        if out.resolve() == i.path.resolve() or out.resolve() in i.path.resolve().parents:
            raise SoupError(f"--out {out} would overwrite the ingredient {i.path}")
    if gs is not None and (why := data_mismatch(ingredients[0].manifest, gs)):
        raise SoupError(f"{ingredients[0].path} {why}")

    with quiet_libraries():  # no "Loading weights" bar per ingredient
        loaded = [SentenceTransformer(str(i.path), device="cpu") for i in ingredients]
    soup = loaded[0]
    soup.load_state_dict(
        average_state_dicts([m.state_dict() for m in loaded], weights, [str(i.path) for i in ingredients])
    )
    del loaded[1:]

    dev = None
    template = ingredients[0].manifest.get("hyperparameters", {}).get("template")
    if gs is not None and template and (evaluator := dev_evaluator(gs, template)) is not None:
        dev = evaluator(soup).get(DEV_METRIC)

    with atomic_dir(out, "soup") as staged:  # also removes scratch folders of a killed run
        with quiet_libraries():  # nor "Writing model shards"
            soup.save(str(staged.result))
        manifest = soup_manifest(ingredients, dev)
        atomic_write_json(staged.result / "training_manifest.json", manifest)
        atomic_write_text(staged.result / "README.md", soup_card(manifest))
    return SoupResult(out, ingredients, dev, manifest)


def soup_manifest(ingredients: Sequence[Ingredient], dev_ndcg: float | None) -> dict:
    from ..fileio import versions

    first = ingredients[0].manifest
    total = sum(i.weight for i in ingredients)
    rules = []
    for i in ingredients:
        rules += [r for r in i.manifest.get("data_rules", []) if r not in rules]
    rules.append("every ingredient was trained on the same golden set and split (fingerprints checked)")
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **{k: first.get(k) for k in ("base_model", "base_fingerprint", "golden", *SAME[1:])},
        "hyperparameters": first.get("hyperparameters"),  # the first ingredient's; all are under "soup"
        "soup": {
            "method": "weighted average of weights (uniform soup when weights are equal)",
            "ingredients": [
                {
                    "path": str(i.path),
                    "weight": round(i.weight / total, 6),
                    **{
                        k: i.manifest.get(k)
                        for k in ("hyperparameters", "augmentation", "training_rows", "steps", "seconds", "dev")
                    },
                }
                for i in ingredients
            ],
        },
        "training_rows": sum(i.manifest.get("training_rows") or 0 for i in ingredients),
        "augmentation": None,
        "steps": sum(i.manifest.get("steps") or 0 for i in ingredients),
        "seconds": round(sum(i.manifest.get("seconds") or 0 for i in ingredients), 1),
        "dev": {"ndcg@10_base": (first.get("dev") or {}).get("ndcg@10_base"), "ndcg@10_best": dev_ndcg},
        "test": {},
        "versions": versions(),
        "data_rules": rules,
    }


def ingredient_configs(cfg: TrainConfig, keywords: int) -> dict[str, TrainConfig]:
    """The soup recipe: the plain fine-tune and the same fine-tune with `keywords` extra keyword queries."""
    if keywords < 1:
        raise SoupError("the soup recipe needs --soup-keywords of at least 1")
    if cfg.keyword_augment:
        raise SoupError("--soup-keywords trains the plain ingredient itself: leave --augment-keywords at 0")
    return {"plain": cfg, f"keywords-{keywords}": replace(cfg, keyword_augment=keywords)}


def trained_with(path: Path, cfg: TrainConfig, gs: GoldenSet) -> bool:
    """Whether `path` holds a fine-tune with exactly this config, base weights, golden set and split."""
    from ..encoding.models import model_fingerprint

    try:
        m = json.loads((path / "training_manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        (path / "model.safetensors").exists()
        and m.get("hyperparameters") == json.loads(json.dumps(asdict(cfg)))
        and data_mismatch(m, gs) is None
        and m.get("base_fingerprint") == model_fingerprint(cfg.base)
    )


def train_soup(
    gs: GoldenSet,
    out_dir: str | Path,
    cfg: TrainConfig,
    keywords: int,
    *,
    ingredients_dir: str | Path | None = None,
    reuse: bool = True,
    progress: bool = False,
    golden_dir: str | None = None,
    log=print,
) -> SoupResult:
    """Train the recipe's ingredients and average them into `out_dir`. Ingredients live in
    `ingredients_dir` (default: `<out_dir>.ingredients`); with `reuse`, one already trained there with the
    same config, base, golden set and split is not trained again (an interrupted soup resumes)."""
    out = Path(out_dir)
    where = Path(ingredients_dir) if ingredients_dir else out.parent / f"{out.name}.ingredients"
    paths = []
    configs = ingredient_configs(cfg, keywords)
    for n, (name, icfg) in enumerate(configs.items(), 1):
        path = where / name
        if reuse and trained_with(path, icfg, gs):
            log(f"soup ingredient {n}/{len(configs)} {name}: already trained with this config, reused")
        else:
            log(f"soup ingredient {n}/{len(configs)} {name}: training")
            train(gs, path, icfg, progress=progress, golden_dir=golden_dir)
        paths.append(path)
    return make_soup(paths, out, gs=gs)
