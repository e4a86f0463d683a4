"""Reading a command's inputs with the CLI's reporting: corpus files and imported query files, their
problems on stderr, exit 2 on errors unless the command skips invalid lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..corpus import Prompt, bundled_corpus_paths, read_corpus
from .output import err, fail, out, print_report, safe

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
