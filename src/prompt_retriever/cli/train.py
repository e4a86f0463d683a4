"""`train`, `soup` and `push`: fine-tune a model, average fine-tunes into one, upload one to the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..encoding.models import DEFAULT_MODEL
from ..fileio import check_out_dir
from .app import app
from .options import (
    AugmentOpt,
    BatchOpt,
    ClickGradeOpt,
    EpochsOpt,
    ForceReplaceOpt,
    LossOpt,
    LrOpt,
    MaxRowsOpt,
    MaxStepsOpt,
    NaturalShareOpt,
    NegOpt,
    PatienceOpt,
    SoupOpt,
    TrainingOptions,
    WarmupOpt,
    train_config,
)
from .output import out, reports_errors, safe


@app.command("train")
@reports_errors
def train_cmd(
    golden: Annotated[Path, typer.Option(help="Golden set folder with a train/dev split.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the fine-tuned model.")],
    base: Annotated[str, typer.Option(help="Base model to fine-tune.")] = DEFAULT_MODEL,
    epochs: EpochsOpt = 1.0,
    batch_size: BatchOpt = 32,
    lr: LrOpt = 8e-5,
    warmup: WarmupOpt = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    hard_negatives: NegOpt = 1,
    max_rows: MaxRowsOpt = 3000,
    augment_keywords: AugmentOpt = 0,
    soup_keywords: SoupOpt = 0,
    max_steps: MaxStepsOpt = -1,
    loss: LossOpt = "mnrl",
    early_stopping: PatienceOpt = 0,
    natural_share: NaturalShareOpt = 0.75,
    click_positive_grade: ClickGradeOpt = 2,
    force: ForceReplaceOpt = False,
) -> None:
    """Fine-tune with MultipleNegativesRankingLoss on the train split; keep the best dev checkpoint."""
    from ..golden.goldenset import GoldenSet
    from ..training import train, train_soup

    check_out_dir(out_dir, "model", force=force)  # before minutes of training
    cfg = train_config(TrainingOptions.of(locals()))
    if soup_keywords:
        soup = train_soup(
            GoldenSet.load(golden), out_dir, cfg, soup_keywords, progress=True, golden_dir=str(golden), log=out.print
        )
        out.print(
            f"model soup of {len(soup.ingredients)} fine-tunes "
            f"({safe(', '.join(str(i.path) for i in soup.ingredients))}); "
            f"dev NDCG@10 {soup.dev_ndcg or 0:.3f}; model: {safe(out_dir)}"
        )
        return
    res = train(GoldenSet.load(golden), out_dir, cfg, progress=True, golden_dir=str(golden))
    out.print(
        f"trained {res.rows} rows, {res.steps} steps in {res.seconds:.0f} s; dev NDCG@10 "
        f"{res.base_dev_ndcg or 0:.3f} (base) -> {res.best_dev_ndcg or 0:.3f}; model: {safe(out_dir)}"
    )


@app.command()
@reports_errors
def soup(
    models: Annotated[list[Path], typer.Argument(help="Two or more fine-tuned model folders (same base and data).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the averaged model.")],
    weight: Annotated[
        list[float] | None, typer.Option("--weight", "-w", help="One weight per model (default: equal).")
    ] = None,
    golden: Annotated[
        Path | None, typer.Option(help="The models' golden set, to measure the soup's dev NDCG@10.")
    ] = None,
    force: ForceReplaceOpt = False,
) -> None:
    """Average the weights of fine-tunes of one base model into one model (a "model soup")."""
    from ..golden.goldenset import GoldenSet
    from ..training.soup import make_soup

    check_out_dir(out_dir, "model", force=force)
    res = make_soup(models, out_dir, weight or None, gs=GoldenSet.load(golden) if golden else None)
    for i in res.ingredients:
        dev = (i.manifest.get("dev") or {}).get("ndcg@10_best")
        out.print(
            f"  {safe(i.path)}  weight {i.weight:g}" + (f", dev NDCG@10 {dev:.3f}" if dev else ""), highlight=False
        )
    dev = f"; dev NDCG@10 {res.dev_ndcg:.3f}" if res.dev_ndcg is not None else ""
    out.print(f"soup of {len(res.ingredients)} models{dev}; model: {safe(out_dir)}")


@app.command()
@reports_errors
def push(
    model_dir: Annotated[Path, typer.Argument(help="Trained model folder.")],
    repo_id: Annotated[str, typer.Option(help="Hub repository, e.g. me/prompt-retriever-minilm.")],
    dry_run: Annotated[bool, typer.Option(help="Write what would be uploaded; upload nothing.")] = False,
    private: Annotated[bool, typer.Option(help="Create the repository as private.")] = False,
    plan: Annotated[Path | None, typer.Option(help="Where to write the upload plan (JSON).")] = None,
) -> None:
    """Upload a model folder to the Hugging Face Hub (token from HF_TOKEN)."""
    from ..training.push import push as do_push

    plan_path = plan or model_dir.parent / f"{model_dir.name}.push-plan.json"
    result = do_push(model_dir, repo_id, dry_run=dry_run, private=private, plan_path=plan_path)  # PushError: exit 2
    verb = "would upload" if dry_run else "uploaded"
    for f in result["files"]:
        out.print(f"  {safe(f['path'])}  {f['bytes']:,} bytes", highlight=False)
    out.print(
        f"{verb} {len(result['files'])} files ({result['total_bytes']:,} bytes) to {safe(repo_id)}; "
        f"plan: {safe(plan_path)}"
    )
