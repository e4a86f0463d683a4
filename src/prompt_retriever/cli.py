"""Command-line interface: `prompt-retriever --help`. Handlers stay thin over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .corpus import CorpusReport, Prompt, bundled_corpus_paths, corpus_stats, read_corpus
from .embedding import DEFAULT_TEMPLATE, DOCUMENT_TEMPLATES
from .models import DEFAULT_MODEL, ModelNotFoundError
from .retriever import IndexLoadError

app = typer.Typer(
    help="Search creative-writing prompts, build golden query sets, evaluate and fine-tune retrievers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
corpus_app = typer.Typer(help="Validate and describe prompt corpus files.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")

out = Console()
err = Console(stderr=True)

CorpusOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--corpus", "-c", help="Corpus file(s): tagged .txt, .csv or .jsonl. Default: the bundled corpus."
    ),
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model name (bundled, local folder or hub id).")]
AllowDownloadOpt = Annotated[
    bool, typer.Option("--allow-download", help="Allow fetching models from the Hugging Face hub.")
]
SkipInvalidOpt = Annotated[
    bool,
    typer.Option("--skip-invalid", help="Load the valid lines of a corpus with errors (still reported)."),
]


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_report(report: CorpusReport, limit: int = 200) -> None:
    for issue in report.issues[:limit]:
        color = "red" if issue.severity == "error" else "yellow"
        err.print(f"[{color}]{issue}[/]", highlight=False, markup=True, soft_wrap=True)
    if len(report.issues) > limit:
        err.print(f"... and {len(report.issues) - limit} more issues")


def load_prompts(corpus: list[Path] | None, skip_invalid: bool = False, quiet: bool = False) -> list[Prompt]:
    """Load corpus files for a command: report issues on stderr, exit 2 on errors unless skipping."""
    report = read_corpus(corpus or bundled_corpus_paths())
    if report.issues and not quiet:
        print_report(report)
    if report.errors and not skip_invalid:
        fail(f"{report.summary()}; fix the lines above or pass --skip-invalid")
    if report.errors:
        err.print(f"[yellow]skipped {len(report.errors)} invalid line(s); {report.summary()}[/]")
    if not report.prompts:
        fail("the corpus has no valid prompts")
    return report.prompts


def guarded(fn):
    """Turn the library's expected errors into one clear line and exit code 2, no traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ModelNotFoundError, IndexLoadError, FileNotFoundError, ValueError) as exc:
            fail(str(exc))

    return wrapper


# ----------------------------------------------------------------------------- corpus


@corpus_app.command("validate")
def corpus_validate(
    files: Annotated[list[Path], typer.Argument(help="Corpus files to check.", exists=True, dir_okay=False)],
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors.")] = False,
) -> None:
    """Check corpus files; every problem is reported as FILE:LINE: severity: message. Exit 1 on errors."""
    report = read_corpus(files)
    print_report(report, limit=10_000)
    out.print(report.summary())
    if report.errors or (strict and report.warnings):
        raise typer.Exit(1)


@corpus_app.command("stats")
def corpus_stats_cmd(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Corpus files (default: bundled corpus).")
    ] = None,
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
    out.print("kind: " + ", ".join(f"{k} {v}" for k, v in stats.by_kind.items()))
    w = stats.words
    out.print(
        f"words per prompt: min {w['min']:.0f}, p25 {w['p25']:.0f}, median {w['median']:.0f}, "
        f"p75 {w['p75']:.0f}, max {w['max']:.0f}, mean {w['mean']}"
    )
    t = Table("genre", "prompts", title="By genre")
    for g, n in stats.by_genre.items():
        t.add_row(g, str(n))
    out.print(t)
    t = Table("theme", "prompts", "genres", title="By theme")
    for th, n in stats.by_theme.items():
        t.add_row(th, str(n), str(stats.genres_per_theme[th]))
    out.print(t)


# ----------------------------------------------------------------------------- search / index


@app.command()
@guarded
def search(
    query: Annotated[str, typer.Argument(help="What you feel like writing about.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=100, help="Number of results.")] = 5,
    genre: Annotated[str | None, typer.Option(help="Only this genre.")] = None,
    theme: Annotated[str | None, typer.Option(help="Only this theme.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON lines.")] = False,
    corpus: CorpusOpt = None,
    index_dir: Annotated[Path | None, typer.Option("--index", help="A saved index folder.")] = None,
    model: ModelOpt = DEFAULT_MODEL,
    allow_download: AllowDownloadOpt = False,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Search prompts. The index is built on first use and cached; rebuilt when corpus or model change."""
    from .indexcache import cached_retriever
    from .retriever import PromptRetriever

    if not query.strip():
        fail("empty query")
    if index_dir:
        retriever = PromptRetriever.load(index_dir, allow_download=allow_download or None)
    else:
        prompts = load_prompts(corpus, skip_invalid)
        retriever = cached_retriever(
            prompts, model, show_progress=True, allow_download=allow_download or None
        )
    known = {p.genre.casefold() for p in retriever.prompts}
    if genre and genre.strip().casefold() not in known:
        fail(f"unknown genre {genre!r}; known: {', '.join(sorted({p.genre for p in retriever.prompts}))}")
    hits = retriever.search(query, k=k, genre=genre, theme=theme)
    if as_json:
        for h in hits:
            print(json.dumps(h.to_dict(), ensure_ascii=False))
        return
    if not hits:
        out.print("no prompts match those filters")
    for h in hits:
        p = h.prompt
        out.print(
            f"[bold]{h.rank}. {p.title}[/]  [dim]{p.genre} · {p.theme} · {h.score:.3f}[/]", highlight=False
        )
        out.print(f"   {p.text}", highlight=False, soft_wrap=True)


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
    allow_download: AllowDownloadOpt = False,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Embed a corpus and save the index (embeddings.npy, prompts.jsonl, manifest.json)."""
    from .retriever import PromptRetriever

    prompts = load_prompts(corpus, skip_invalid)
    r = PromptRetriever(model, template=template, show_progress=True, allow_download=allow_download or None)
    r.index(prompts)
    r.save(out_dir)
    out.print(f"indexed {len(r)} prompts with {r.fingerprint} into {out_dir}")


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
    from .indexcache import cached_retriever

    prompts = load_prompts(None)
    retriever = cached_retriever(prompts, model, show_progress=True, allow_download=allow_download or None)
    out.print(f"[bold]{len(retriever)} bundled prompts indexed with {retriever.fingerprint}[/]")
    for q, genre in EXAMPLE_QUERIES:
        label = f"{q!r}" + (f" (genre {genre})" if genre else "")
        out.print(f"\n[bold cyan]search {label}[/]")
        for h in retriever.search(q, k=3, genre=genre):
            out.print(
                f"  {h.rank}. {h.prompt.title} [dim]({h.prompt.genre} · {h.prompt.theme}, {h.score:.3f})[/]"
            )


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
