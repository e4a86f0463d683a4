"""`corpus validate` and `corpus stats`: check and describe corpus files (`-c/--corpus FILE`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..corpus import bundled_corpus_paths, corpus_stats, read_corpus
from .app import corpus_app
from .inputs import load_prompts
from .options import CorpusOpt, JsonOpt, SkipInvalidOpt, VerboseOpt
from .output import out, print_report, safe

# The positional form of the corpus files, kept working and hidden from --help (one spelling: -c/--corpus).
FilesArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Corpus files (use -c/--corpus).", exists=True, dir_okay=False, hidden=True),
]


def corpus_files(files: list[Path] | None, corpus: list[Path] | None) -> list[Path] | None:
    """The corpus files given positionally and with -c/--corpus, in that order (None: none given)."""
    given = [*(files or []), *(corpus or [])]
    return given or None


@corpus_app.command("validate")
def corpus_validate(
    files: FilesArg = None,
    corpus: CorpusOpt = None,
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Check corpus files; every problem is reported as FILE:LINE: severity: message (of each kind of repair
    the first few and a count, every one with --verbose). Exit 1 on errors."""
    report = read_corpus(corpus_files(files, corpus) or bundled_corpus_paths())
    print_report(report, limit=10_000, verbose=verbose)
    out.print(safe(report.summary()))
    if report.errors or (strict and report.warnings):
        raise typer.Exit(1)


@corpus_app.command("stats")
def corpus_stats_cmd(
    files: FilesArg = None,
    corpus: CorpusOpt = None,
    as_json: JsonOpt = False,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Counts by genre, theme and kind, themes' genre coverage, and the text length distribution."""
    prompts = load_prompts(corpus_files(files, corpus), skip_invalid)
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
