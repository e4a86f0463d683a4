"""The documents of a trained model folder: its model card (README.md) and training curves.

A fine-tune's card (`model_card`) and a soup's card (`soup_card`) are one skeleton (`render_card`:
front matter, intended use, data, results and test tables, provenance) filled with what differs.
`update_card_with_test` rewrites either once `compare` has measured the held-out test split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..encoding.encoder import DEFAULT_TEMPLATE, DOCUMENT_TEMPLATES
from ..fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from .config import LOSSES, TrainConfig

PROJECT = "[prompt-retriever](https://pypi.org/project/prompt-retriever/)"


def card_number(v) -> str:
    """A metric as model cards show it (n/a when not measured)."""
    return f"{v:.4f}" if isinstance(v, (int, float)) else "n/a"


def card_test_rows(manifest: dict) -> str:
    """The rows of a model card's test-metrics table (a placeholder row before `compare` measured them)."""
    test = manifest.get("test") or {}
    return (
        "\n".join(f"| {k} | {v:.4f} |" for k, v in test.items() if isinstance(v, (int, float)))
        or "| (not measured yet) | |"
    )


def loss_name(loss: str | None) -> str:
    """The sentence-transformers loss class a `TrainConfig.loss` option trains with."""
    return LOSSES.get(loss or "mnrl", LOSSES["mnrl"])


def render_card(
    manifest: dict,
    *,
    title: str,
    intro: str,
    template: str,
    data: str,
    body: str,
    column: str,
    held_out_from: str,
    provenance: str,
    tags: Sequence[str] = (),
) -> str:
    """The model-card skeleton; the caller gives the parts in which a fine-tune and a soup differ."""
    split = manifest.get("split") or {}
    dev = manifest["dev"]
    template_text = DOCUMENT_TEMPLATES.get(template, template)
    return f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: {manifest["base_model"]}
tags: [{", ".join(["sentence-transformers", "prompt-retriever", "creative-writing", "retrieval", *tags])}]
---

# {title}

{intro}

## Intended use

Semantic search over creative-writing prompts like those it was trained on (tagged with genre, theme
and title). Embed each prompt as `{template_text}` (template `{template}`) and the query as plain text,
then rank by cosine similarity. Not evaluated for other domains or languages than English.

## Data

Golden set `{manifest["golden"]}` (fingerprint `{manifest["golden_fingerprint"]}`), split by prompt:
{split.get("test", "?")} of prompts held out for test and {split.get("dev", "?")} for dev (seed
{split.get("seed", "?")}). {data}

{body}

## Results

| split | metric | base | {column} |
|---|---|---|---|
| dev | NDCG@10 | {card_number(dev.get("ndcg@10_base"))} | {card_number(dev.get("ndcg@10_best"))} |

Test split (held-out prompts, never used for {held_out_from}):

| metric | value |
|---|---|
{card_test_rows(manifest)}

Provenance: `training_manifest.json` ({provenance}).
"""


def _augment_sentence(aug: dict | None) -> str:
    if not aug:
        return ""
    return (
        f"The train split was augmented with {aug['added']} extra keyword queries ({aug['per_prompt']} per train "
        f"prompt, 2-3 of its top {aug['top']} TF-IDF words, seed {aug['seed']})."
    )


def model_card(cfg: TrainConfig, manifest: dict) -> str:
    """The card of a fine-tune: its data, hyperparameters and dev (later also test) scores."""
    return render_card(
        manifest,
        title=f"prompt-retriever fine-tune of {manifest['base_model']}",
        intro=f"""A sentence-transformers model fine-tuned by {PROJECT} to
search a library of creative-writing prompts: a writer types what they feel like writing about
("haunted lighthouse", "memoir about food") and the model ranks the prompts.""",
        template=cfg.template,
        data=f"""{manifest["training_rows"]} training rows (query, positive,
{cfg.hard_negatives} hard negatives) from train queries and train prompts only; held-out prompts never appear
in training. {_augment_sentence(manifest.get("augmentation"))}""",
        body=f"""## Training

| hyperparameter | value |
|---|---|
| loss | {loss_name(cfg.loss)} |
| epochs | {cfg.epochs} |
| batch size | {cfg.batch_size} |
| learning rate | {cfg.learning_rate} |
| warm-up | {cfg.warmup_ratio:.0%} of steps, linear schedule |
| optimizer | AdamW (weight decay {cfg.weight_decay}) |
| hard negatives per row | {cfg.hard_negatives} (mined with the base model, relative margin {cfg.relative_margin}) |
| seed | {cfg.seed} |
| steps | {manifest["steps"]} ({manifest["seconds"]} s on CPU) |

The checkpoint with the best dev NDCG@10 (graded, the project's trec_eval-exact metric, over the full
corpus) was kept.""",
        column="fine-tuned",
        held_out_from="training or checkpoint selection",
        provenance="versions, fingerprints, hyperparameters",
    )


def soup_card(manifest: dict) -> str:
    """The card of a model soup: its ingredients (data, hyperparameters, dev score) and its own scores."""
    rows = []
    for n, ing in enumerate(manifest["soup"]["ingredients"], 1):
        hp = ing.get("hyperparameters") or {}
        aug = ing.get("augmentation")
        data = f"+{aug['added']} keyword queries ({aug['per_prompt']} per prompt)" if aug else "golden train split"
        dev_best = card_number((ing.get("dev") or {}).get("ndcg@10_best"))
        rows.append(
            f"| {n} | {ing['weight']:.2f} | {data} | {ing.get('training_rows')} | {hp.get('epochs')} | "
            f"{hp.get('learning_rate')} | {hp.get('seed')} | {dev_best} |"
        )
    hp = manifest.get("hyperparameters") or {}
    ingredients = "\n".join(rows)
    return render_card(
        manifest,
        title=f"prompt-retriever model soup of {manifest['base_model']} fine-tunes",
        intro=f"""A sentence-transformers model made by {PROJECT} to
search a library of creative-writing prompts. Its weights are the weighted average ("model soup") of
{len(manifest["soup"]["ingredients"])} fine-tunes of {manifest["base_model"]}, each trained with
{loss_name(hp.get("loss"))}, hard negatives and AdamW on the same golden set.""",
        template=hp.get("template", DEFAULT_TEMPLATE),
        data="""Every ingredient trained on train queries and train prompts only; held-out
prompts never appear in training.""",
        body=f"""## Ingredients

| # | weight | data | rows | epochs | learning rate | seed | dev NDCG@10 |
|---|---|---|---|---|---|---|---|
{ingredients}""",
        column="soup",
        held_out_from="training, checkpoint selection or the soup",
        provenance="versions, fingerprints, every ingredient's hyperparameters",
        tags=["model-soup"],
    )


def update_card_with_test(
    model_dir: str | Path, test_metrics: dict[str, float], cfg: TrainConfig | None = None
) -> None:
    """Record held-out test metrics in the manifest and model card of a trained model folder (or a soup)."""
    d = Path(model_dir)
    manifest = json.loads((d / "training_manifest.json").read_text())
    manifest["test"] = test_metrics
    atomic_write_json(d / "training_manifest.json", manifest)
    if "soup" in manifest:
        atomic_write_text(d / "README.md", soup_card(manifest))
        return
    cfg = cfg or TrainConfig(**manifest["hyperparameters"])
    atomic_write_text(d / "README.md", model_card(cfg, manifest))


def write_training_curves(history: list[dict], path: Path, metric_key: str) -> None:
    """training_curves.png: the training loss and the dev metric over the steps."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    dev = [(h["step"], h[metric_key]) for h in history if metric_key in h]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    if loss:
        ax1.plot(*zip(*loss, strict=True), color="tab:blue", label="training loss")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss", color="tab:blue")
    if dev:
        ax2 = ax1.twinx()
        ax2.plot(*zip(*dev, strict=True), color="tab:orange", marker="o", label="dev NDCG@10")
        ax2.set_ylabel("dev NDCG@10", color="tab:orange")
    ax1.set_title("Fine-tuning: loss and dev NDCG@10")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
