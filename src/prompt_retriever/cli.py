"""Command-line interface: `prompt-retriever --help`. Handlers stay thin over the library."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .corpus import CorpusReport, Prompt, bundled_corpus_paths, corpus_stats, query_problem, read_corpus
from .encoding.encoder import DEFAULT_TEMPLATE, DOCUMENT_TEMPLATES
from .encoding.models import DEFAULT_MODEL
from .errors import PromptRetrieverError
from .fileio import check_out_dir, staged_files
from .progress import display, task

app = typer.Typer(
    help="Search creative-writing prompts, build golden query sets, evaluate and fine-tune retrievers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
corpus_app = typer.Typer(help="Validate and describe prompt corpus files.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
queries_app = typer.Typer(help="Golden query sets: generate, split, describe.", no_args_is_help=True)
app.add_typer(queries_app, name="queries")

# emoji=False: `:100:` in `FILE:100: error` (or in a prompt) is text, never rich's emoji code for 💯
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

# C0 controls but tab and newline, DEL, C1, and the bidi/line-separator characters a terminal acts on.
_UNSAFE_ON_TERMINAL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(m: re.Match) -> str:
    c = ord(m[0])
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def safe(text: object) -> str:
    """Corpus, query, model or error text ready for `Console.print`: rich markup escaped and control
    characters shown as `\\x1b`-style escapes, so no escape sequence, hyperlink or tag takes effect."""
    return escape(_UNSAFE_ON_TERMINAL.sub(_visible, str(text)))


CorpusOpt = Annotated[
    list[Path] | None,
    typer.Option("--corpus", "-c", help="Corpus file(s): tagged .txt, .csv or .jsonl. Default: the bundled corpus."),
]
RunOpt = Annotated[
    Path | None,
    typer.Option("--run", help="A pipeline run folder: serve the system it chose (system.json), as measured."),
]
SystemOpt = Annotated[
    str | None,
    typer.Option(
        "--system",
        help="Build a system by hand: dense | bm25 | hybrid | hybrid-rrf | hybrid-adaptive (with --model; default "
        "dense). Fusion weights are untuned (0.5) here; --run serves the weights a run tuned on dev.",
    ),
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model name (bundled, local folder or hub id).")]
BackendOpt = Annotated[
    str,
    typer.Option(
        help="Inference backend: torch | onnx | onnx-int8 (ONNX Runtime, exported locally; int8 is the fastest "
        "on CPU). An index remembers its backend; queries must use the same one.",
    ),
]
AllowDownloadOpt = Annotated[
    bool, typer.Option("--allow-download", help="Allow fetching models from the Hugging Face hub.")
]
SkipInvalidOpt = Annotated[
    bool,
    typer.Option("--skip-invalid", help="Load the valid lines of a corpus with errors (still reported)."),
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="List every repair; by default the first few of each kind and a count."),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Write into an --out folder that exists and holds files this command did not make (files of the "
        "same names are overwritten, the others are left alone).",
    ),
]
ForceReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace an --out folder that exists and is not a model this tool made: EVERYTHING in it is "
        "deleted. `.`, its parents, the home folder and / are never replaced, even with --force.",
    ),
]


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {safe(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def given_options(ctx: typer.Context) -> dict[str, str]:
    """The command's options given on its command line (not left at their defaults): parameter name -> the
    option as its help spells it (`run_dir` -> `--run`)."""
    flags = {p.name: max(p.opts, key=len) for p in ctx.command.params if p.name}
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    given = ("COMMANDLINE", "ENVIRONMENT", "PROMPT")
    return {name: flags.get(name, name) for name, src in sources.items() if src is not None and src.name in given}


# (option, the options it cannot be given with, why); options by parameter name. Shared by search and serve.
Conflicts = tuple[tuple[str, tuple[str, ...], str], ...]
RUN_OR_INDEX_CONFLICTS: Conflicts = (
    ("run_dir", ("corpus", "model", "system", "index_dir", "skip_invalid"), "--run answers with the run's corpus, "
     "model and system"),
    ("index_dir", ("corpus", "model", "skip_invalid"), "--index answers with the prompts and model saved in it"),
)  # fmt: skip


def refuse_conflicts(ctx: typer.Context, rules: Conflicts) -> None:
    """Exit 2 with one clear line when an option is given with one it cannot go with (never ignore one)."""
    given = given_options(ctx)
    for name, others, why in rules:
        clash = [given[o] for o in others if o in given]
        if name in given and clash:
            fail(f"{given[name]} and {', '.join(clash)} cannot be used together: {why}; drop one of them")


def print_report(report: CorpusReport, limit: int = 200, verbose: bool = False) -> None:
    """Every error; of each kind of repair the first few and a count (every one when `verbose`)."""
    listing = report.listing(verbose=verbose)
    for issue in listing.issues[:limit]:
        color = "red" if issue.severity == "error" else "yellow"
        err.print(f"[{color}]{safe(issue)}[/]", highlight=False, markup=True, soft_wrap=True)
    if len(listing.issues) > limit:
        err.print(f"... and {len(listing.issues) - limit} more issues")
    for line in listing.summary:
        err.print(f"[yellow]{safe(line)}[/]", highlight=False, soft_wrap=True)


def load_prompts(
    corpus: list[Path] | None, skip_invalid: bool = False, quiet: bool = False, verbose: bool = False
) -> list[Prompt]:
    """Load corpus files for a command: report issues on stderr, exit 2 on errors unless skipping."""
    report = read_corpus(corpus or bundled_corpus_paths())
    if report.issues and not quiet:
        print_report(report, verbose=verbose)
    if report.errors and not skip_invalid:
        fail(f"{report.summary()}; fix the lines above or pass --skip-invalid")
    if report.errors:
        err.print(f"[yellow]skipped {len(report.errors)} invalid line(s); {safe(report.summary())}[/]")
    if not report.prompts:
        fail("the corpus has no valid prompts")
    return report.prompts


def guarded(fn):
    """Turn the library's expected errors into one clear line and exit code 2, no traceback; progress
    bars, where a command asks for them, are drawn on the console the command prints on."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with display(out):
                return fn(*args, **kwargs)
        except PromptRetrieverError as exc:
            fail(str(exc))

    return wrapper


# ----------------------------------------------------------------------------- corpus


@corpus_app.command("validate")
def corpus_validate(
    files: Annotated[list[Path], typer.Argument(help="Corpus files to check.", exists=True, dir_okay=False)],
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Check corpus files; every problem is reported as FILE:LINE: severity: message (of each kind of repair
    the first few and a count, every one with --verbose). Exit 1 on errors."""
    report = read_corpus(files)
    print_report(report, limit=10_000, verbose=verbose)
    out.print(safe(report.summary()))
    if report.errors or (strict and report.warnings):
        raise typer.Exit(1)


@corpus_app.command("stats")
def corpus_stats_cmd(
    files: Annotated[list[Path] | None, typer.Argument(help="Corpus files (default: bundled corpus).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Counts by genre, theme and kind, themes' genre coverage, and the text length distribution."""
    prompts = load_prompts(files, skip_invalid)
    stats = corpus_stats(prompts)
    if as_json:
        print(json.dumps(stats.to_dict(), indent=2))
        return
    out.print(f"[bold]{stats.count} prompts[/], {len(stats.by_genre)} genres, {len(stats.by_theme)} themes")
    out.print("kind: " + safe(", ".join(f"{k} {v}" for k, v in stats.by_kind.items())))
    w = stats.words
    out.print(
        f"words per prompt: min {w['min']:.0f}, p25 {w['p25']:.0f}, median {w['median']:.0f}, "
        f"p75 {w['p75']:.0f}, max {w['max']:.0f}, mean {w['mean']}"
    )
    t = Table("genre", "prompts", title="By genre")
    for g, n in stats.by_genre.items():
        t.add_row(safe(g), str(n))
    out.print(t)
    t = Table("theme", "prompts", "genres", title="By theme")
    for th, n in stats.by_theme.items():
        t.add_row(safe(th), str(n), str(stats.genres_per_theme[th]))
    out.print(t)


# ----------------------------------------------------------------------------- search / index


@app.command()
@guarded
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What you feel like writing about.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=100, help="Number of results.")] = 5,
    genre: Annotated[str | None, typer.Option(help="Only this genre.")] = None,
    theme: Annotated[str | None, typer.Option(help="Only this theme.")] = None,
    run_dir: RunOpt = None,
    system: SystemOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document (the API's shape).")] = False,
    as_jsonl: Annotated[bool, typer.Option("--jsonl", help="Print one JSON object per result.")] = False,
    corpus: CorpusOpt = None,
    index_dir: Annotated[Path | None, typer.Option("--index", help="A saved index folder.")] = None,
    model: ModelOpt = DEFAULT_MODEL,
    allow_download: AllowDownloadOpt = False,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Search prompts: with --run, the system a pipeline run chose; else an index built on first use and
    cached (rebuilt when corpus or model change)."""
    from .serving.server import build_retriever

    refuse_conflicts(ctx, RUN_OR_INDEX_CONFLICTS)
    if problem := query_problem(query):  # the rule of the API and PromptRetriever.search too
        fail(problem)
    if as_json and as_jsonl:
        fail("--json and --jsonl: choose one")
    retriever = build_retriever(
        run_dir=run_dir,
        system=system,
        index_dir=index_dir,
        prompts=None if run_dir or index_dir else load_prompts(corpus, skip_invalid),
        model=model,
        allow_download=allow_download or None,
    )
    t0 = time.perf_counter()  # an unknown genre or theme: the retriever's InputError, exit 2
    hits = retriever.search(query, k=k, genre=genre, theme=theme)
    took = round((time.perf_counter() - t0) * 1000, 2)
    if as_jsonl:
        for h in hits:
            print(json.dumps(h.to_dict(), ensure_ascii=False))
        return
    if as_json:
        print(json.dumps(search_document(query, k, genre, theme, took, hits), ensure_ascii=False, indent=2))
        return
    info = retriever.describe()
    score = f" · test NDCG@10 {info['test_ndcg@10']:.2f}" if info.get("test_ndcg@10") is not None else ""
    out.print(f"[dim]{safe(info['system'])}{score}[/]", highlight=False)
    if not hits:
        out.print("no prompts match those filters")
    for h in hits:
        p = h.prompt
        out.print(
            f"[bold]{h.rank}. {safe(p.title)}[/]  [dim]{safe(p.genre)} · {safe(p.theme)} · {h.score:.3f}[/]",
            highlight=False,
        )
        out.print(f"   {safe(p.text)}", highlight=False, soft_wrap=True)


def search_document(query: str, k: int, genre: str | None, theme: str | None, took_ms: float, hits) -> dict:
    """`search --json`: the same shape as the API's /api/search response."""
    return {
        "query": query.strip(),
        "k": k,
        "genre": genre,
        "theme": theme,
        "took_ms": took_ms,
        "results": [
            {
                "rank": h.rank,
                "score": round(h.score, 6),
                "prompt": {
                    "id": h.prompt.id,
                    "genre": h.prompt.genre,
                    "theme": h.prompt.theme,
                    "title": h.prompt.title,
                    "text": h.prompt.text,
                    "kind": h.prompt.kind,
                },
            }
            for h in hits
        ],
    }


@app.command()
@guarded
def index(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the index to.")],
    corpus: CorpusOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    template: Annotated[
        str,
        typer.Option(help=f"Text embedded per prompt: {', '.join(DOCUMENT_TEMPLATES)} or a format string."),
    ] = DEFAULT_TEMPLATE,
    backend: BackendOpt = "torch",
    allow_download: AllowDownloadOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    force: ForceOpt = False,
) -> None:
    """Embed a corpus and save the index (embeddings.npy, prompts.jsonl, manifest.json)."""
    from .search.retriever import PromptRetriever

    check_out_dir(out_dir, "index", force=force)
    prompts = load_prompts(corpus, skip_invalid)
    r = PromptRetriever(
        model, template=template, show_progress=True, allow_download=allow_download or None, backend=backend
    )
    r.index(prompts)
    with staged_files(out_dir, "index", last=("manifest.json",)) as staged:  # a full disk keeps the old index
        r.save(staged)
    out.print(f"indexed {len(r)} prompts with {safe(r.fingerprint)} into {safe(out_dir)}")


# ----------------------------------------------------------------------------- golden query sets


@queries_app.command("generate")
@guarded
def queries_generate(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the golden set (BEIR layout).")],
    method: Annotated[str, typer.Option(help="heuristic | llm")] = "heuristic",
    corpus: CorpusOpt = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same golden set.")] = 42,
    base_url: Annotated[
        str | None, typer.Option(help="llm: OpenAI-compatible endpoint, e.g. http://localhost:11434/v1")
    ] = None,
    llm_model: Annotated[str | None, typer.Option("--llm-model", help="llm: model name at the endpoint.")] = None,
    per_prompt: Annotated[int, typer.Option(min=1, max=5, help="llm: queries asked per prompt.")] = 3,
    template: Annotated[
        Path | None, typer.Option(help="llm: prompt template file ({genre} {theme} {title} {text} {n}).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="llm: parallel requests.")] = 4,
    timeout: Annotated[float, typer.Option(help="llm: seconds per request.")] = 60.0,
    retries: Annotated[int, typer.Option(min=0, max=20, help="llm: retries on 429/5xx/errors.")] = 5,
    allow_partial: Annotated[bool, typer.Option(help="llm: keep going when some prompts fail.")] = False,
    csv_export: Annotated[
        bool, typer.Option("--csv/--no-csv", help="Also write pairs.csv (query,context,relevance).")
    ] = True,
    skip_invalid: SkipInvalidOpt = False,
    force: ForceOpt = False,
) -> None:
    """Generate queries with graded relevance judgments for every prompt of a corpus.

    The LLM method reads its API key from PROMPT_RETRIEVER_LLM_API_KEY or OPENAI_API_KEY.
    """
    llm_only = ("base_url", "llm_model", "per_prompt", "template", "concurrency", "timeout", "retries", "allow_partial")
    ignored = [flag for name, flag in given_options(ctx).items() if name in llm_only]
    if method != "llm" and ignored:
        fail(f"{', '.join(ignored)}: only --method llm uses them; pass --method llm or drop them")
    check_out_dir(out_dir, "golden", force=force)
    prompts = load_prompts(corpus, skip_invalid)
    if method == "heuristic":
        from .golden.heuristic import HeuristicConfig, generate_heuristic

        gs = generate_heuristic(prompts, HeuristicConfig(seed=seed))
    elif method == "llm":
        from .golden.llm_queries import LLMConfig, LLMQueryGenerator

        if not base_url or not llm_model:
            fail("--method llm needs --base-url and --llm-model")
        cfg = LLMConfig(
            base_url=base_url,
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
@guarded
def queries_split(
    directory: Annotated[Path, typer.Argument(help="Golden set folder.")],
    by: Annotated[str, typer.Option(help="Split unit: prompt (held-out prompts).")] = "prompt",
    test: Annotated[float, typer.Option(help="Fraction of prompts held out for test.")] = 0.2,
    dev: Annotated[float, typer.Option(help="Fraction of prompts held out for dev.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    """Split a golden set into train/dev/test without leakage (qrels/train.tsv, dev.tsv, test.tsv)."""
    from .golden.goldenset import GoldenSet
    from .golden.splits import split_by_prompt

    if by != "prompt":
        fail(f"unknown split unit {by!r}; supported: prompt")
    gs = split_by_prompt(GoldenSet.load(directory), test=test, dev=dev, seed=seed)
    gs.save(directory)
    out.print(", ".join(f"{k} {len(v)} queries" for k, v in gs.splits.items()))


@queries_app.command("stats")
@guarded
def queries_stats(
    directory: Annotated[Path, typer.Argument(help="Golden set folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Queries per kind and relevant prompts per query, per split."""
    from .golden.goldenset import GoldenSet, summarize

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


def import_query_file(
    path: Path, prompts: list[Prompt], fmt: str | None, skip_invalid: bool, for_eval=False, verbose: bool = False
):
    """Import a pairs/RAGAS file (`for_eval`: through a temporary folder, every query in the test split):
    every problem on stderr, the report on stdout; exit 2 on errors unless skipping."""
    from .golden.importers import GoldenImportError, import_for_evaluation, import_golden

    try:
        load = import_for_evaluation if for_eval else import_golden
        gs, rep = load(path, prompts, format=fmt, skip_invalid=skip_invalid)
    except GoldenImportError as exc:
        print_report(exc.report, verbose=verbose)
        fail(f"{exc.report.summary()}; fix the rows above or pass --skip-invalid")
    print_report(rep, verbose=verbose)
    for line in rep.lines():
        out.print(safe(line), highlight=False)
    return gs


@queries_app.command("import")
@guarded
def queries_import(
    file: Annotated[Path, typer.Argument(help="pairs CSV/JSONL (query,context,relevance) or RAGAS test set.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the golden set (BEIR layout).")],
    corpus: CorpusOpt = None,
    fmt: ImportFormatOpt = None,
    csv_export: Annotated[
        bool, typer.Option("--csv/--no-csv", help="Also write pairs.csv (query,context,relevance).")
    ] = True,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Drop invalid rows (of FILE and of the corpus) instead of stopping."),
    ] = False,
    force: ForceOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Import a golden set made elsewhere: contexts are matched to corpus prompts, judgments become qrels."""
    check_out_dir(out_dir, "golden", force=force)
    prompts = load_prompts(corpus, skip_invalid, verbose=verbose)
    gs = import_query_file(file, prompts, fmt, skip_invalid, verbose=verbose)
    gs.save(out_dir)
    if csv_export:
        gs.export_pairs_csv(out_dir / "pairs.csv")
    out.print(
        f"wrote {len(gs.queries)} queries to {safe(out_dir)}; next: `queries split {safe(out_dir)}`", highlight=False
    )


# ----------------------------------------------------------------------------- evaluation


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        fail(f"--k takes comma-separated whole numbers, got {text!r}")
    if not ks or ks[0] < 1:
        fail("--k values must be at least 1")
    return ks


def load_eval_set(
    golden: Path | None, judged: Path | None, corpus: list[Path] | None, skip_invalid: bool, prompts=None
):
    """The golden set to evaluate: a golden folder, or judged queries (JSONL) over a corpus (over the golden
    folder's corpus, with its dev split for tuning, when both are given; else over `prompts` when given)."""
    from .golden.goldenset import GoldenSet, load_query_set

    if golden is None and judged is None:
        fail("give --golden DIR (from `queries generate`), --judged FILE, --pairs FILE or --ragas FILE")
    base = GoldenSet.load(golden) if golden else None
    if judged is None:
        return base
    over = base.corpus if base else prompts or load_prompts(corpus, skip_invalid)
    return load_query_set(judged, over, dev_from=base)


def load_imported_eval_set(
    path: Path, fmt: str, golden: Path | None, corpus: list[Path] | None, skip_invalid: bool, prompts=None
):
    """A pairs/RAGAS file imported on the fly, all of it the test split (over the golden folder's corpus,
    with its dev split for tuning, when --golden is given too; else over `prompts` when given)."""
    from dataclasses import replace

    from .golden.goldenset import GoldenSet

    base = GoldenSet.load(golden) if golden else None
    prompts = base.corpus if base else prompts or load_prompts(corpus, skip_invalid)
    gs = import_query_file(path, prompts, fmt, skip_invalid, for_eval=True)
    if base is None or not base.splits.get("dev"):
        return gs
    dev = [qid for qid in base.splits["dev"] if qid not in gs.qrels]
    wanted = set(dev)
    return replace(
        gs,
        queries=gs.queries + [q for q in base.queries if q.id in wanted],
        qrels={**gs.qrels, **{qid: base.qrels[qid] for qid in dev}},
        splits={**gs.splits, "dev": dev},
    )


EVALUATE_CONFLICTS: Conflicts = (
    ("run_dir", ("corpus",), "--run scores the run's system over the run's own corpus"),
    ("golden", ("corpus",), "--golden brings its own corpus"),
    ("split", ("judged", "pairs", "ragas"), "a --judged, --pairs or --ragas file is evaluated whole, as test split"),
)


def same_corpus(a: list[Prompt], b: list[Prompt]) -> bool:
    from .corpus import corpus_fingerprint

    return corpus_fingerprint(a) == corpus_fingerprint(b)


@app.command()
@guarded
def evaluate(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")],
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
    k: Annotated[str, typer.Option("--k", help="Cutoffs, comma-separated.")] = "1,3,5,10",
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
    bootstrap: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = 2000,
    permutations: Annotated[int, typer.Option(min=100, help="Randomization-test resamples.")] = 10000,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG plots.")] = True,
    judge_base_url: Annotated[
        str | None, typer.Option(help="Optional LLM judge: OpenAI-compatible endpoint (key from the environment).")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="LLM judge model name.")] = None,
    judge_k: Annotated[int, typer.Option(min=1, max=20, help="Results per query the judge reads.")] = 5,
    skip_invalid: SkipInvalidOpt = False,
    force: ForceOpt = False,
) -> None:
    """Compare retrieval systems on a golden split: report.json, report.md, plots and TREC runs."""
    from .evaluation.evaluate import evaluate_systems
    from .evaluation.report import write_report
    from .evaluation.served import ServedSystem
    from .evaluation.systems import build_systems

    refuse_conflicts(ctx, EVALUATE_CONFLICTS)
    if "judge_k" in given_options(ctx) and not judge_model:
        fail("--judge-k sets how much the LLM judge reads: give --judge-base-url and --judge-model, or drop it")
    if bool(judge_base_url) != bool(judge_model):
        fail("the LLM judge needs both --judge-base-url and --judge-model")
    imported = pairs or ragas
    if (pairs and ragas) or (imported and judged):
        fail("give one of --judged, --pairs and --ragas")
    check_out_dir(out_dir, "report", force=force)
    served = ServedSystem.from_run(run_dir) if run_dir else None
    if run_dir and not (golden or judged or imported):
        golden = run_dir / "golden"  # the run's own query set
    prompts = served.retriever.prompts if served else None
    if imported:
        gs = load_imported_eval_set(imported, "pairs" if pairs else "ragas", golden, corpus, skip_invalid, prompts)
    else:
        gs = load_eval_set(golden, judged, corpus, skip_invalid, prompts)
    if served and not same_corpus(gs.corpus, served.retriever.prompts):
        fail(
            f"{golden} holds another corpus than the run {run_dir}, whose system --run scores over its own "
            f"corpus: give a query set of that corpus (e.g. --golden {run_dir / 'golden'}, or --judged, --pairs, "
            "--ragas without --golden)"
        )
    eval_split = "test" if judged or imported else split
    gs.split_queries(eval_split)  # fail on an unknown split before embedding anything
    specs = system if system is not None else [] if served else ["bm25", DEFAULT_MODEL, "hybrid"]
    if not gs.dev_pairs() and any(s.split(":")[0] in ("hybrid", "hybrid-adaptive") for s in specs):
        out.print("[dim]no dev split: the hybrids' fusion weights are untuned (0.5); --golden DIR tunes them[/]")
    ks = parse_ks(k)
    with task("embedding", unit="texts"):  # one bar for every encode call
        systems = [served] if served else []
        systems += build_systems(specs, gs.corpus, dev=gs.dev_pairs(), show_progress=True)
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
    if judge_base_url or judge_model:
        from .evaluation.judge import Judge, judge_report
        from .llm import ChatClient

        judge = Judge(ChatClient(judge_base_url, judge_model))
        judge_report(judge, rep, gs.corpus, k=judge_k, n_bootstrap=bootstrap, seed=seed)
        out.print(f"LLM judge: {judge.calls} new verdicts, {judge.unjudged} answers that were not yes/no")
    write_report(rep, out_dir, make_plots=plots)
    print_summary(rep, out_dir)


def print_summary(rep, out_dir: Path) -> None:
    from .evaluation.evaluate import PRIMARY

    t = Table("system", PRIMARY, "mrr@10", "recall@10", title=f"{rep.split}: {len(rep.queries)} queries")
    for s in sorted(rep.systems, key=lambda s: -s.estimates[PRIMARY].mean):
        t.add_row(
            *(
                [safe(s.name)]
                + [
                    f"{s.estimates[m].mean:.3f} [{s.estimates[m].lo:.3f}, {s.estimates[m].hi:.3f}]"
                    for m in (PRIMARY, "mrr@10", "recall@10")
                ]
            )
        )
    out.print(t)
    for c in rep.comparisons:
        if c.metric == PRIMARY:
            out.print(
                f"{safe(c.system)} vs {safe(c.baseline)}: {PRIMARY} {c.diff.mean:+.3f} "
                f"[{c.diff.lo:+.3f}, {c.diff.hi:+.3f}], "
                f"p={c.p_value:.4f}, Holm p={c.p_holm:.4f}"
            )
    out.print(f"report: {safe(out_dir / 'report.md')}")


# ----------------------------------------------------------------------------- fine-tuning


def train_config(
    *,
    base: str,
    epochs: float,
    batch_size: int,
    lr: float,
    warmup: float,
    seed: int,
    hard_negatives: int,
    max_rows: int,
    augment_keywords: int,
    max_steps: int,
    loss: str,
    early_stopping: int,
    soup_keywords: int = 0,
    natural_share: float | None = 0.75,
):
    """The TrainConfig of the training options shared by `train` and `pipeline`, passed by their option names.

    TrainConfig rejects an unknown loss; with `soup_keywords` the soup recipe is checked as well, so a bad
    combination fails before any work (both as `guarded` one-line errors).
    """
    from .training import TrainConfig, ingredient_configs

    cfg = TrainConfig(
        base=base,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        warmup_ratio=warmup,
        seed=seed,
        hard_negatives=hard_negatives,
        max_rows=max_rows or None,
        keyword_augment=augment_keywords,
        max_steps=max_steps,
        loss=loss,
        early_stopping_patience=early_stopping or None,
        natural_share=natural_share,
    )
    if soup_keywords:
        ingredient_configs(cfg, soup_keywords)
    return cfg


EpochsOpt = Annotated[float, typer.Option(min=0.01, help="Training epochs.")]
BatchOpt = Annotated[int, typer.Option(min=2, help="Batch size (in-batch negatives).")]
LrOpt = Annotated[float, typer.Option(help="Learning rate (AdamW).")]
WarmupOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of steps for linear warm-up.")]
NegOpt = Annotated[int, typer.Option(min=0, max=20, help="Hard negatives per training row.")]
MaxRowsOpt = Annotated[int, typer.Option(min=0, help="Seeded sample of training rows (0 = all); CPU budget.")]
AugmentOpt = Annotated[
    int,
    typer.Option(
        min=0,
        max=50,
        help="Extra keyword queries per train prompt (TF-IDF words), added to the train split only; 0 = none.",
    ),
]
SoupOpt = Annotated[
    int,
    typer.Option(
        min=0,
        max=50,
        help="Model soup: train the plain model and the same model with N extra keyword queries per train "
        "prompt, then average their weights (about twice the training time; 0 = off). The two models are "
        "kept in <out>.ingredients/ (pipeline: <run>/ingredients/) and reused when rerun with the same "
        "settings.",
    ),
]
MaxStepsOpt = Annotated[int, typer.Option(help="Stop after this many steps (overrides epochs; -1 = off).")]
LossOpt = Annotated[str, typer.Option(help="mnrl | cached-mnrl (large batches on little memory).")]
NaturalShareOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of the --max-rows budget drawn from natural-language queries (chosen on dev; a golden set "
        "without natural queries trains as before).",
    ),
]
PatienceOpt = Annotated[int, typer.Option(min=0, help="Early stopping after N evaluations without gain (0 = off).")]


@app.command("train")
@guarded
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
    force: ForceReplaceOpt = False,
) -> None:
    """Fine-tune with MultipleNegativesRankingLoss on the train split; keep the best dev checkpoint."""
    from .golden.goldenset import GoldenSet
    from .training import train, train_soup

    check_out_dir(out_dir, "model", force=force)  # before minutes of training
    cfg = train_config(
        base=base,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        seed=seed,
        hard_negatives=hard_negatives,
        max_rows=max_rows,
        augment_keywords=augment_keywords,
        max_steps=max_steps,
        loss=loss,
        early_stopping=early_stopping,
        natural_share=natural_share,
        soup_keywords=soup_keywords,
    )
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
@guarded
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
    from .golden.goldenset import GoldenSet
    from .training.soup import make_soup

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
@guarded
def compare(
    golden: Annotated[Path, typer.Option(help="Golden set folder.")],
    candidate: Annotated[str, typer.Option(help="Fine-tuned model folder (or any model).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")],
    baseline: Annotated[str, typer.Option(help="Base model.")] = DEFAULT_MODEL,
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
    plots: Annotated[bool, typer.Option("--plots/--no-plots")] = True,
    force: ForceOpt = False,
) -> None:
    """Base vs fine-tuned vs BM25 vs hybrids, with deltas, CIs and Holm-corrected p-values."""
    from .evaluation.compare import compare as run_compare
    from .golden.goldenset import GoldenSet, load_query_set

    check_out_dir(out_dir, "comparison", force=force)
    gs = GoldenSet.load(golden)
    gs.split_queries(split)
    second_gs = load_query_set(second, gs.corpus)  # no --second: the bundled hand-written queries, if they fit
    if second_gs is None:
        out.print("[dim]no second query set: the bundled hand-written queries do not fit this corpus[/]")
    second_name = None if second_gs is None else str(second) if second else "bundled hand-written queries"
    res = run_compare(
        gs,
        baseline=baseline,
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
    )
    from .pipeline import headline_numbers

    for line in headline_numbers(res.summary)["lines"]:
        out.print(safe(line), highlight=False)
    out.print(f"report: {safe(out_dir / 'summary.md')}")


@app.command()
@guarded
def push(
    model_dir: Annotated[Path, typer.Argument(help="Trained model folder.")],
    repo_id: Annotated[str, typer.Option(help="Hub repository, e.g. me/prompt-retriever-minilm.")],
    dry_run: Annotated[bool, typer.Option(help="Write what would be uploaded; upload nothing.")] = False,
    private: Annotated[bool, typer.Option(help="Create the repository as private.")] = False,
    plan: Annotated[Path | None, typer.Option(help="Where to write the upload plan (JSON).")] = None,
) -> None:
    """Upload a model folder to the Hugging Face Hub (token from HF_TOKEN)."""
    from .training.push import PushError
    from .training.push import push as do_push

    plan_path = plan or model_dir.parent / f"{model_dir.name}.push-plan.json"
    try:
        result = do_push(model_dir, repo_id, dry_run=dry_run, private=private, plan_path=plan_path)
    except PushError as exc:
        fail(str(exc))
    verb = "would upload" if dry_run else "uploaded"
    for f in result["files"]:
        out.print(f"  {safe(f['path'])}  {f['bytes']:,} bytes", highlight=False)
    out.print(
        f"{verb} {len(result['files'])} files ({result['total_bytes']:,} bytes) to {safe(repo_id)}; "
        f"plan: {safe(plan_path)}"
    )


def default_run_dir(corpus: list[Path] | None) -> Path:
    """`pipeline`'s run folder without --out: runs/NAME, NAME the first corpus file's name without its
    extension (runs/bundled for the bundled corpus), so runs of different corpora never share a folder."""
    if not corpus:
        return Path("runs/bundled")
    name = re.sub(r"[^\w.-]+", "-", Path(corpus[0]).stem).strip(".-")
    return Path("runs") / (name or "corpus")


def corpus_names(files: list[Path]) -> str:
    return "the bundled corpus" if files == bundled_corpus_paths() else ", ".join(Path(f).name for f in files)


@app.command()
@guarded
def pipeline(
    corpus: CorpusOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Run folder. Default: runs/NAME, NAME the first corpus file's name without its extension "
            "(runs/bundled for the bundled corpus). A run folder of another corpus is replaced only with --force.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random step.")] = 42,
    base: Annotated[str, typer.Option(help="Base model.")] = DEFAULT_MODEL,
    epochs: EpochsOpt = 1.0,
    batch_size: BatchOpt = 32,
    lr: LrOpt = 8e-5,
    warmup: WarmupOpt = 0.1,
    hard_negatives: NegOpt = 1,
    max_rows: MaxRowsOpt = 3000,
    augment_keywords: AugmentOpt = 0,
    soup_keywords: SoupOpt = 0,
    max_steps: MaxStepsOpt = -1,
    loss: LossOpt = "mnrl",
    early_stopping: PatienceOpt = 0,
    natural_share: NaturalShareOpt = 0.75,
    llm_base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint for LLM queries.")] = None,
    llm_model: Annotated[str | None, typer.Option(help="Model at that endpoint.")] = None,
    judged: Annotated[Path | None, typer.Option(help="Hand-judged JSONL query set for the second comparison.")] = None,
    reference: Annotated[
        bool,
        typer.Option(
            "--reference/--no-reference",
            help="For a collection without natural-language queries: train with a reference collection's "
            "(replay) and choose the served system on its held-out genres too.",
        ),
    ] = True,
    reference_corpus: Annotated[
        list[Path] | None,
        typer.Option(help="The reference collection's corpus file(s) (default: the bundled corpus).", exists=True),
    ] = None,
    reference_queries: Annotated[
        Path | None,
        typer.Option(help="The reference's natural-query JSONL (default: the bundled natural queries).", exists=True),
    ] = None,
    until: Annotated[str | None, typer.Option(help="Stop after this stage.")] = None,
    force: Annotated[bool, typer.Option(help="Rerun every stage.")] = False,
    bootstrap: Annotated[int, typer.Option(min=100)] = 2000,
    permutations: Annotated[int, typer.Option(min=100)] = 10000,
    plots: Annotated[bool, typer.Option("--plots/--no-plots")] = True,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Corpus -> queries -> split -> base evaluation -> fine-tune -> comparison -> report, resumable."""
    import os

    from .pipeline import PipelineConfig, other_corpus_run, run_pipeline

    if not reference and (reference_corpus or reference_queries):
        fail("--no-reference conflicts with --reference-corpus/--reference-queries: give one or the other")
    llm_base_url = llm_base_url or os.environ.get("PROMPT_RETRIEVER_LLM_BASE_URL")
    llm_model = llm_model or os.environ.get("PROMPT_RETRIEVER_LLM_MODEL")
    if bool(llm_base_url) != bool(llm_model):
        fail(
            "an LLM endpoint needs both --llm-base-url and --llm-model (or PROMPT_RETRIEVER_LLM_BASE_URL and "
            "PROMPT_RETRIEVER_LLM_MODEL); give both, or neither"
        )
    files = corpus or bundled_corpus_paths()
    out_dir = out_dir or default_run_dir(corpus)
    if not force and (other := other_corpus_run(out_dir, files)):  # the pipeline's own stage record
        fail(
            f"{out_dir} holds a pipeline run of another corpus ({other}); give --out FOLDER for a run of "
            f"{corpus_names(files)}, or --force to replace that run"
        )
    train_cfg = train_config(
        base=base,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup,
        seed=seed,
        hard_negatives=hard_negatives,
        max_rows=max_rows,
        augment_keywords=augment_keywords,
        max_steps=max_steps,
        loss=loss,
        early_stopping=early_stopping,
        natural_share=natural_share,
        soup_keywords=soup_keywords,
    )
    cfg = PipelineConfig(
        corpus=corpus,
        out=out_dir,
        seed=seed,
        base=base,
        skip_invalid=skip_invalid,
        train=train_cfg,
        soup_keywords=soup_keywords,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        judged=judged,
        reference=reference,
        reference_corpus=reference_corpus,
        reference_queries=reference_queries,
        until=until,
        force=force,
        n_bootstrap=bootstrap,
        n_permutations=permutations,
        plots=plots,
    )
    run_pipeline(cfg, out, progress=True)


# ----------------------------------------------------------------------------- serving


@app.command()
@guarded
def serve(
    ctx: typer.Context,
    run_dir: RunOpt = None,
    system: SystemOpt = None,
    index_dir: Annotated[Path | None, typer.Option("--index", help="A saved index folder.")] = None,
    corpus: CorpusOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    backend: Annotated[
        str | None,
        typer.Option(
            help="Inference backend: torch | onnx | onnx-int8 (the fastest on CPU). Default: the --index "
            "folder's own backend, else torch. Another backend than the index's re-encodes the prompts.",
        ),
    ] = None,
    qdrant_url: Annotated[
        str | None, typer.Option(help="Search a Qdrant server/cluster (API key from QDRANT_API_KEY).")
    ] = None,
    qdrant_path: Annotated[str | None, typer.Option(help="Embedded Qdrant in this folder.")] = None,
    log_queries: Annotated[bool, typer.Option(help="Write query text to the request log (off: privacy).")] = False,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="Allow this browser origin (CORS off by default).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Query batches encoded at once. Default: one per core for onnx backends (each with one "
            "inference thread), one for torch.",
        ),
    ] = None,
    header_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a client has to send a whole request head (else 408).")
    ] = 10.0,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections in all; at the cap the longest-idle one is closed.")
    ] = 1024,
    max_connections_per_ip: Annotated[
        int,
        typer.Option(min=1, help="Open connections per client address; at the cap its longest-idle one is closed."),
    ] = 512,
    refuse_delay: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds a refused connection waits for its answer (and one closed to make room for its close), "
            "so clients that reconnect at once cannot make the server busy refusing them.",
        ),
    ] = 2.0,
    allow_download: AllowDownloadOpt = False,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Serve the HTTP API and the web page; the index is loaded or built once at start-up."""
    from .serving.server import build_retriever, configure_logging
    from .serving.server import serve as run_server

    refuse_conflicts(
        ctx,
        (
            *RUN_OR_INDEX_CONFLICTS,
            ("qdrant_url", ("qdrant_path",), "search either a Qdrant server or an embedded Qdrant"),
        ),
    )
    configure_logging()  # before any model or index loads: a library logging first would take the root logger
    retriever = build_retriever(
        run_dir=run_dir,
        system=system,
        index_dir=index_dir,
        prompts=None if run_dir or index_dir else load_prompts(corpus, skip_invalid),
        model=model,
        backend=backend,
        qdrant_url=qdrant_url,
        qdrant_path=qdrant_path,
        allow_download=allow_download or None,
    )
    run_server(
        retriever,
        host=host,
        port=port,
        log_queries=log_queries,
        cors_origins=cors_origin or (),
        workers=workers,
        announce=lambda line: out.print(safe(line), highlight=False, soft_wrap=True),  # a model folder's name
        header_timeout=header_timeout,
        max_connections=max_connections,
        max_connections_per_ip=max_connections_per_ip,
        refuse_delay=refuse_delay,
    )


EXAMPLE_QUERIES = [
    ("haunted lighthouse", None),
    ("memoir about food", None),
    ("a story about grief", None),
    ("first love on a night train", "Romance"),
    ("teach someone a skill", None),
]


@app.command()
@guarded
def demo(model: ModelOpt = DEFAULT_MODEL, allow_download: AllowDownloadOpt = False) -> None:
    """Index the bundled corpus and run a few example searches."""
    from .search.indexcache import cached_retriever

    prompts = load_prompts(None)
    retriever = cached_retriever(prompts, model, show_progress=True, allow_download=allow_download or None)
    out.print(f"[bold]{len(retriever)} bundled prompts indexed with {safe(retriever.fingerprint)}[/]")
    for q, genre in EXAMPLE_QUERIES:
        label = f"{q!r}" + (f" (genre {genre})" if genre else "")
        out.print(f"\n[bold cyan]search {safe(label)}[/]")
        for h in retriever.search(q, k=3, genre=genre):
            p = h.prompt
            out.print(f"  {h.rank}. {safe(p.title)} [dim]({safe(p.genre)} · {safe(p.theme)}, {h.score:.3f})[/]")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
