"""`evaluate` and `compare`: score retrieval systems on a golden split, with confidence intervals and tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ..encoding.models import DEFAULT_MODEL
from ..fileio import check_out_dir
from ..progress import task
from .app import app
from .inputs import load_prompts, reported_import
from .options import (
    BootstrapOpt,
    CorpusOpt,
    EngineOpt,
    ForceOpt,
    FusionOpt,
    PermutationsOpt,
    PlotsOpt,
    SkipInvalidOpt,
    check_fusion,
)
from .output import Conflicts, fail, given_options, note, out, refuse_conflicts, renamed, reports_errors, safe

if TYPE_CHECKING:
    from ..evaluation.evaluate import EvalReport

EVALUATE_CONFLICTS: Conflicts = (
    ("run_dir", ("corpus",), "--run scores the run's system over the run's own corpus"),
    ("golden", ("corpus",), "--golden brings its own corpus"),
    ("split", ("judged", "pairs", "ragas"), "a --judged, --pairs or --ragas file is evaluated whole, as test split"),
)
ReportOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Report folder.")]


def parse_cutoffs(text: str) -> list[int]:
    """`--cutoffs 1,5,10`: the cutoffs k of the metrics, sorted, each at least 1."""
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        fail(f"--cutoffs takes comma-separated whole numbers, got {text!r}")
    if not ks or ks[0] < 1:
        fail("--cutoffs values must be at least 1")
    return ks


@app.command()
@reports_errors
def evaluate(
    ctx: typer.Context,
    out_dir: ReportOutOpt,
    golden: Annotated[Path | None, typer.Option(help="Golden set folder (BEIR layout).")] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="A pipeline run folder: score exactly the system it serves (its model, kind and tuned weights, "
            "system.json) over the run's corpus, listed first under the run's label. With no query set given: "
            "the run's own golden set (RUN/golden).",
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="Split to evaluate: test, dev, train or all.")] = "test",
    system: Annotated[
        list[str] | None,
        typer.Option(
            "--system",
            "-s",
            help="bm25 | MODEL (name or folder) | hybrid[:MODEL] | hybrid-adaptive[:MODEL] (fusion weights tuned "
            "on the dev split) | hybrid-rrf[:MODEL]. Repeat. Default: bm25, all-MiniLM-L6-v2, hybrid; with --run, "
            "none besides the run's system.",
        ),
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="System the others are compared with (default: first).")] = None,
    cutoffs: Annotated[str, typer.Option("--cutoffs", help="Cutoffs k of the metrics, comma-separated.")] = "1,3,5,10",
    k: Annotated[str | None, typer.Option("--k", hidden=True)] = None,
    judged: Annotated[
        Path | None,
        typer.Option(help="Evaluate judged queries from a JSONL file ({query, relevant}) instead."),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(help="Evaluate a query,context,relevance CSV instead (imported on the fly over --corpus)."),
    ] = None,
    ragas: Annotated[
        Path | None,
        typer.Option(help="Evaluate a RAGAS test set (CSV or JSONL) instead (imported on the fly over --corpus)."),
    ] = None,
    corpus: CorpusOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and randomization tests.")] = 0,
    bootstrap: BootstrapOpt = 2000,
    permutations: PermutationsOpt = 10000,
    plots: PlotsOpt = True,
    llm_base_url: Annotated[
        str | None,
        typer.Option(
            "--llm-base-url", help="Optional LLM judge: OpenAI-compatible endpoint (key from the environment)."
        ),
    ] = None,
    llm_model: Annotated[str | None, typer.Option("--llm-model", help="LLM judge: model name at the endpoint.")] = None,
    judge_base_url: Annotated[str | None, typer.Option("--judge-base-url", hidden=True)] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model", hidden=True)] = None,
    judge_k: Annotated[int, typer.Option(min=1, max=20, help="Results per query the LLM judge reads.")] = 5,
    skip_invalid: SkipInvalidOpt = False,
    force: ForceOpt = False,
    engine: EngineOpt = "auto",
    fusion: FusionOpt = "corpus",
) -> None:
    """Compare retrieval systems on a golden split: report.json, report.md, plots and TREC runs."""
    from ..evaluation.evaluate import evaluate_systems
    from ..evaluation.report import write_report
    from ..evaluation.served import ServedSystem
    from ..evaluation.systems import build_systems
    from ..golden.evalsets import load_eval_set, load_imported_eval_set, same_corpus
    from ..search.spec import WEIGHTED_KINDS

    refuse_conflicts(ctx, EVALUATE_CONFLICTS)
    check_fusion(fusion)
    cutoffs = renamed(ctx, "cutoffs", "k", cutoffs, k)
    given = given_options(ctx)
    old = bool({"judge_base_url", "judge_model"} & given.keys())  # messages in the spelling given
    url_flag, model_flag = ("--judge-base-url", "--judge-model") if old else ("--llm-base-url", "--llm-model")
    llm_base_url = renamed(ctx, "llm_base_url", "judge_base_url", llm_base_url, judge_base_url)
    llm_model = renamed(ctx, "llm_model", "judge_model", llm_model, judge_model)
    if "judge_k" in given and not llm_model:
        fail(f"--judge-k sets how much the LLM judge reads: give {url_flag} and {model_flag}, or drop it")
    if bool(llm_base_url) != bool(llm_model):
        fail(f"the LLM judge needs both {url_flag} and {model_flag}")
    imported = pairs or ragas
    if (pairs and ragas) or (imported and judged):
        fail("give one of --judged, --pairs and --ragas")
    if golden is None and judged is None and imported is None and run_dir is None:
        fail("give --golden DIR (from `queries generate`), --judged FILE, --pairs FILE or --ragas FILE")
    specs = system if system is not None else [] if run_dir else ["bm25", DEFAULT_MODEL, "hybrid"]
    weighted = any(s.split(":")[0] in WEIGHTED_KINDS for s in specs)
    if "fusion" in given and not weighted:
        fail(
            "--fusion says what the --system hybrids fuse, and none is given (a run's system keeps its own "
            "fusion): give --system hybrid or hybrid-adaptive, or drop --fusion"
        )
    check_out_dir(out_dir, "report", force=force)
    if "engine" in given and run_dir is None:
        fail("--engine says where the run's system searches (the other systems search exactly): give --run too")
    served = ServedSystem.from_run(run_dir, engine=engine) if run_dir else None
    if run_dir and not (golden or judged or imported):
        golden = run_dir / "golden"  # the run's own query set
    prompts = served.retriever.prompts if served else lambda: load_prompts(corpus, skip_invalid)
    if imported:
        fmt = "pairs" if pairs else "ragas"
        gs = reported_import(lambda: load_imported_eval_set(imported, fmt, golden, prompts, skip_invalid=skip_invalid))
    else:
        gs = load_eval_set(golden, judged, prompts)
    if served and not same_corpus(gs.corpus, served.retriever.prompts):
        fail(
            f"{golden} holds another corpus than the run {run_dir}, whose system --run scores over its own "
            f"corpus: give a query set of that corpus (e.g. --golden {run_dir / 'golden'}, or --judged, --pairs, "
            "--ragas without --golden)"
        )
    eval_split = "test" if judged or imported else split
    gs.split_queries(eval_split)  # fail on an unknown split before embedding anything
    if not gs.dev_judged() and weighted:
        note("[dim]no dev split: the hybrids' fusion weights are untuned (0.5); --golden DIR tunes them[/]")
    ks = parse_cutoffs(cutoffs)
    with task("embedding", unit="texts"):  # one bar for every encode call
        systems = [served] if served else []
        systems += build_systems(specs, gs.corpus, dev=gs.dev_judged(), show_progress=True, fusion=fusion)
        rep = evaluate_systems(
            gs,
            systems,
            split=eval_split,
            baseline=baseline,
            ks=ks,
            seed=seed,
            n_bootstrap=bootstrap,
            n_permutations=permutations,
            golden_dir=str(judged or imported or golden),
        )
    if llm_base_url and llm_model:
        from ..evaluation.judge import Judge, judge_report
        from ..llm import ChatClient

        judge = Judge(ChatClient(llm_base_url, llm_model))
        judge_report(judge, rep, gs.corpus, k=judge_k, n_bootstrap=bootstrap, seed=seed)
        out.print(f"LLM judge: {judge.calls} new verdicts, {judge.unjudged} answers that were not yes/no")
    write_report(rep, out_dir, make_plots=plots)
    print_summary(rep, out_dir)


def print_summary(rep: EvalReport, out_dir: Path) -> None:
    """The systems' headline metrics with their confidence intervals, and each comparison's difference."""
    from ..evaluation.evaluate import PRIMARY

    t = Table("system", PRIMARY, "mrr@10", "recall@10", title=f"{rep.split}: {len(rep.queries)} queries")
    for s in sorted(rep.systems, key=lambda s: -s.estimates[PRIMARY].mean):
        cells = [
            f"{s.estimates[m].mean:.3f} [{s.estimates[m].lo:.3f}, {s.estimates[m].hi:.3f}]"
            for m in (PRIMARY, "mrr@10", "recall@10")
        ]
        t.add_row(safe(s.name), *cells)
    out.print(t)
    for c in rep.comparisons:
        if c.metric == PRIMARY:
            out.print(
                f"{safe(c.system)} vs {safe(c.baseline)}: {PRIMARY} {c.diff.mean:+.3f} "
                f"[{c.diff.lo:+.3f}, {c.diff.hi:+.3f}], "
                f"p={c.p_value:.4f}, Holm p={c.p_holm:.4f}"
            )
    out.print(f"report: {safe(out_dir / 'report.md')}")


@app.command()
@reports_errors
def compare(
    ctx: typer.Context,
    golden: Annotated[Path, typer.Option(help="Golden set folder.")],
    candidate: Annotated[str, typer.Option(help="Fine-tuned model folder (or any model).")],
    out_dir: ReportOutOpt,
    base: Annotated[str, typer.Option("--base", help="The model the candidate started from.")] = DEFAULT_MODEL,
    baseline: Annotated[str | None, typer.Option("--baseline", hidden=True)] = None,
    system: Annotated[
        list[str] | None,
        typer.Option("--system", "-s", help="Extra systems: bm25, hybrid, hybrid-rrf, hybrid-adaptive, MODEL."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split of the golden set.")] = "test",
    second: Annotated[
        Path | None,
        typer.Option(
            help="Second query set: a golden folder (e.g. LLM queries) or a judged JSONL file. "
            "Default: the bundled hand-written queries when they fit the corpus."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of bootstrap and randomization tests.")] = 0,
    plots: PlotsOpt = True,
    force: ForceOpt = False,
    fusion: FusionOpt = "corpus",
) -> None:
    """Base vs fine-tuned vs BM25 vs hybrids, with deltas, CIs and Holm-corrected p-values."""
    from ..evaluation.compare import compare as run_compare
    from ..golden.goldenset import GoldenSet, load_query_set
    from ..pipeline import headline_numbers

    base = renamed(ctx, "base", "baseline", base, baseline)
    check_out_dir(out_dir, "comparison", force=force)
    gs = GoldenSet.load(golden)
    gs.split_queries(split)
    second_gs = load_query_set(second, gs.corpus)  # no --second: the bundled hand-written queries, if they fit
    if second_gs is None:
        note("[dim]no second query set: the bundled hand-written queries do not fit this corpus[/]")
    second_name = None if second_gs is None else str(second) if second else "bundled hand-written queries"
    res = run_compare(
        gs,
        baseline=base,
        candidate=candidate,
        extras=system or ["bm25", "hybrid"],
        split=split,
        second=second_gs,
        second_name=second_name,
        out_dir=out_dir,
        seed=seed,
        golden_dir=str(golden),
        show_progress=True,
        make_plots=plots,
        fusion=check_fusion(fusion),
    )
    for line in headline_numbers(res.summary)["lines"]:
        out.print(safe(line), highlight=False)
    out.print(f"report: {safe(out_dir / 'summary.md')}")
