"""`queries generate | split | stats | import`: make, split, describe and import golden query sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..fileio import check_out_dir
from .app import queries_app
from .inputs import load_prompts, reported_import
from .options import CorpusOpt, ForceOpt, JsonOpt, LlmBaseUrlOpt, LlmModelOpt, SkipInvalidOpt, VerboseOpt
from .output import fail, given_options, out, renamed, reports_errors, safe

GoldenDirArg = Annotated[Path, typer.Argument(help="Golden set folder.")]
GoldenOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the golden set (BEIR layout).")]
CsvOpt = Annotated[bool, typer.Option("--csv/--no-csv", help="Also write pairs.csv (query,context,relevance).")]
LLM_ONLY = ("llm_base_url", "base_url", "llm_model", "per_prompt", "template", "concurrency", "timeout", "retries",
            "allow_partial")  # fmt: skip


@queries_app.command("generate")
@reports_errors
def queries_generate(
    ctx: typer.Context,
    out_dir: GoldenOutOpt,
    method: Annotated[str, typer.Option(help="heuristic | llm")] = "heuristic",
    corpus: CorpusOpt = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same golden set.")] = 42,
    llm_base_url: LlmBaseUrlOpt = None,
    base_url: Annotated[str | None, typer.Option("--base-url", hidden=True)] = None,
    llm_model: LlmModelOpt = None,
    per_prompt: Annotated[int, typer.Option(min=1, max=5, help="llm: queries asked per prompt.")] = 3,
    template: Annotated[
        Path | None, typer.Option(help="llm: prompt template file ({genre} {theme} {title} {text} {n}).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="llm: parallel requests.")] = 4,
    timeout: Annotated[float, typer.Option(help="llm: seconds per request.")] = 60.0,
    retries: Annotated[int, typer.Option(min=0, max=20, help="llm: retries on 429/5xx/errors.")] = 5,
    allow_partial: Annotated[bool, typer.Option(help="llm: keep going when some prompts fail.")] = False,
    csv_export: CsvOpt = True,
    skip_invalid: SkipInvalidOpt = False,
    force: ForceOpt = False,
) -> None:
    """Generate queries with graded relevance judgments for every prompt of a corpus.

    The LLM method reads its API key from PROMPT_RETRIEVER_LLM_API_KEY or OPENAI_API_KEY.
    """
    ignored = [flag for name, flag in given_options(ctx).items() if name in LLM_ONLY]
    if method != "llm" and ignored:
        fail(f"{', '.join(ignored)}: only --method llm uses them; pass --method llm or drop them")
    llm_base_url = renamed(ctx, "llm_base_url", "base_url", llm_base_url, base_url)
    check_out_dir(out_dir, "golden", force=force)
    prompts = load_prompts(corpus, skip_invalid)
    if method == "heuristic":
        from ..golden.heuristic import HeuristicConfig, generate_heuristic

        gs = generate_heuristic(prompts, HeuristicConfig(seed=seed))
    elif method == "llm":
        from ..golden.llm_queries import LLMConfig, LLMQueryGenerator

        if not llm_base_url or not llm_model:
            fail("--method llm needs --llm-base-url and --llm-model")
        cfg = LLMConfig(
            base_url=llm_base_url,
            model=llm_model,
            queries_per_prompt=per_prompt,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=retries,
            seed=seed,
            template=template.read_text(encoding="utf-8") if template else None,
        )
        gs, rep = LLMQueryGenerator(cfg).generate(prompts, progress=True, allow_partial=allow_partial)
        out.print(
            f"completions: {rep.from_cache} cached, {rep.generated} new, {len(rep.failed)} failed; "
            f"queries kept {rep.kept}, dropped {dict(rep.dropped) or 0}"
        )
    else:
        fail(f"unknown method {method!r}: use heuristic or llm")
    gs.save(out_dir)
    if csv_export:
        gs.export_pairs_csv(out_dir / "pairs.csv")
    c = gs.counts()
    out.print(
        f"wrote {c['queries']} queries, {c['judgments']} judgments, {c['negatives']} negatives to {safe(out_dir)}"
    )


@queries_app.command("split")
@reports_errors
def queries_split(
    directory: GoldenDirArg,
    test: Annotated[float, typer.Option(help="Fraction of prompts held out for test.")] = 0.2,
    dev: Annotated[float, typer.Option(help="Fraction of prompts held out for dev.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    by: Annotated[str, typer.Option(hidden=True, help="Split unit: prompt, the only one.")] = "prompt",
) -> None:
    """Split a golden set into train/dev/test by held-out prompts, without leakage (qrels/train.tsv, dev.tsv,
    test.tsv): a prompt's queries all go to one split."""
    from ..golden.goldenset import GoldenSet
    from ..golden.splits import split_by_prompt

    if by != "prompt":
        fail(f"unknown split unit {by!r}; supported: prompt")
    gs = split_by_prompt(GoldenSet.load(directory), test=test, dev=dev, seed=seed)
    gs.save(directory)
    out.print(", ".join(f"{k} {len(v)} queries" for k, v in gs.splits.items()))


@queries_app.command("stats")
@reports_errors
def queries_stats(directory: GoldenDirArg, as_json: JsonOpt = False) -> None:
    """Queries per kind and relevant prompts per query, per split."""
    from ..golden.goldenset import GoldenSet, summarize

    gs = GoldenSet.load(directory)
    summary = summarize(gs)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    t = Table("split", "queries", "by kind", "relevant/query (mean, min-max)", title=safe(directory))
    for name, s in summary.items():
        r = s["relevant_per_query"]
        kinds = ", ".join(f"{k} {v}" for k, v in s["by_kind"].items())
        t.add_row(safe(name), str(s["queries"]), safe(kinds), f"{r['mean']} ({r['min']}-{r['max']})")
    out.print(t)


ImportFormatOpt = Annotated[
    str | None,
    typer.Option("--format", help="pairs (query,context,relevance) | ragas. Default: guessed from the columns."),
]


@queries_app.command("import")
@reports_errors
def queries_import(
    file: Annotated[Path, typer.Argument(help="pairs CSV/JSONL (query,context,relevance) or RAGAS test set.")],
    out_dir: GoldenOutOpt,
    corpus: CorpusOpt = None,
    fmt: ImportFormatOpt = None,
    csv_export: CsvOpt = True,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Drop invalid rows (of FILE and of the corpus) instead of stopping."),
    ] = False,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Import a golden set made elsewhere: contexts are matched to corpus prompts, judgments become qrels."""
    from ..golden import import_golden

    check_out_dir(out_dir, "golden", force=force)
    prompts = load_prompts(corpus, skip_invalid, verbose=verbose)
    gs = reported_import(lambda: import_golden(file, prompts, format=fmt, skip_invalid=skip_invalid), verbose)
    gs.save(out_dir)
    if csv_export:
        gs.export_pairs_csv(out_dir / "pairs.csv")
    out.print(
        f"wrote {len(gs.queries)} queries to {safe(out_dir)}; next: `queries split {safe(out_dir)}`", highlight=False
    )
