"""Reading a command's inputs with the CLI's reporting: corpus files and imported query files, their
problems on stderr, exit 2 on errors unless the command skips invalid lines; and the options that say
which system answers (`-s KIND[:MODEL]`, `--run`, `--index`), shared by `search` and `serve`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..corpus import Prompt, bundled_corpus_paths, read_corpus
from .output import Conflicts, err, fail, given_options, out, print_report, safe

if TYPE_CHECKING:
    from ..golden import GoldenSet, ImportReport


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


def reported_import(load: Callable[[], tuple[GoldenSet, ImportReport]], verbose: bool = False) -> GoldenSet:
    """Run an import of a pairs/RAGAS file: every problem on stderr, the report on stdout; exit 2 on errors
    (the import raises them unless it skips invalid rows)."""
    from ..golden import GoldenImportError

    try:
        gs, rep = load()
    except GoldenImportError as exc:
        print_report(exc.report, verbose=verbose)
        fail(f"{exc.report.summary()}; fix the rows above or pass --skip-invalid")
    print_report(rep, verbose=verbose)
    for line in rep.lines():
        out.print(safe(line), highlight=False)
    return gs


RUN_OR_INDEX_CONFLICTS: Conflicts = (
    ("run_dir", ("corpus", "model", "system", "index_dir", "skip_invalid"), "--run answers with the run's corpus, "
     "model and system"),
    ("index_dir", ("corpus", "model", "skip_invalid"), "--index answers with the prompts and model saved in it"),
)  # fmt: skip


def system_and_model(ctx: typer.Context, system: str | None, model: str) -> tuple[str | None, str]:
    """`-s KIND[:MODEL]` and `--model`: the system's kind and its model (the MODEL after the colon, else
    --model). A model in both places, or with --index (whose model is saved in it), exits 2."""
    if system is None or ":" not in system:
        return system, model
    kind, _, named = system.partition(":")
    given = given_options(ctx)
    if "model" in given:
        fail(f"-s {system} names the model already: drop --model, or give -s {kind}")
    if "index_dir" in given:
        fail(f"--index answers with the model saved in it: give -s {kind} without a model")
    if not kind or not named:
        fail(f"-s takes KIND or KIND:MODEL, got {system!r}")
    return kind, named
