"""What the CLI prints, and how: its two consoles, escaping, errors, option checks and the output mode.

- `out` (stdout: results) and `err` (stderr: errors, corpus issues, notes). Written to a file or a pipe
  they do not wrap at 80 columns: a table stays whole and a progress bar stays on one line.
- `safe(text)`: corpus, query or error text made inert for the terminal (markup escaped, controls shown).
- `fail(message)`: one `error:` line on stderr and exit 2; `reports_errors` turns the library's expected
  errors into that line.
- `given_options` / `refuse_conflicts`: options given together that cannot go together exit 2.
- `mode`: the global `--quiet` / `--verbose` choice; `note(text)` prints an informational line unless quiet.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape

from ..errors import PromptRetrieverError
from ..escaping import terminal_text
from ..progress import display

if TYPE_CHECKING:
    from ..corpus import CorpusReport

# Wide enough that no line of a table, a report or a progress bar is broken; nothing pads to it.
UNWRAPPED_WIDTH = 4096


class _Console(Console):
    """A rich console that, when its output is not a terminal (a file, a pipe, a CI log) and no width is
    set (`COLUMNS` or `width=`), does not wrap at 80 columns."""

    @property
    def size(self) -> ConsoleDimensions:
        dims = super().size
        if self._width is None and "COLUMNS" not in self._environ and not self.is_terminal:
            return ConsoleDimensions(UNWRAPPED_WIDTH, dims.height)
        return dims

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


# emoji=False: `:100:` in `FILE:100: error` (or in a prompt) is text, never rich's emoji code for 💯
out: Console = _Console(emoji=False)
err: Console = _Console(stderr=True, emoji=False)
_silent = Console(quiet=True)  # where progress bars go with --quiet


def safe(text: object) -> str:
    """Corpus, query, model or error text ready for `Console.print`: rich markup escaped and control
    characters shown as `\\x1b`-style escapes, so no escape sequence, hyperlink or tag takes effect."""
    return escape(terminal_text(text))


@dataclass
class OutputMode:
    """The global `--quiet` / `--verbose` options: quiet prints only results and errors (no progress bars,
    notes or repairs); verbose lists every repair and shows the libraries' log messages."""

    quiet: bool = False
    verbose: bool = False


mode = OutputMode()


class _LibraryLog(logging.StreamHandler):
    """--verbose: log records on whatever `sys.stderr` is when they are written."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


_library_log = _LibraryLog()
_level_before: list[int] = []  # the root logger's level while --verbose has lowered it


def set_mode(*, quiet: bool, verbose: bool) -> None:
    """Set the output mode for this invocation (the root callback calls it before every command): with
    verbose, the libraries' INFO messages (model loading, index building, ...) on stderr."""
    mode.quiet, mode.verbose = quiet, verbose
    root = logging.getLogger()
    if verbose and not _level_before:
        _level_before.append(root.level)
        root.addHandler(_library_log)
        root.setLevel(logging.INFO)
    elif not verbose and _level_before:
        root.removeHandler(_library_log)
        root.setLevel(_level_before.pop())


def note(text: str) -> None:
    """An informational line (markup allowed, already escaped) on stdout; nothing with --quiet."""
    if not mode.quiet:
        out.print(text, highlight=False, soft_wrap=True)


def deprecated(old: str, new: str) -> None:
    """The one-line note for an old option spelling that still works."""
    err.print(f"[yellow]note: {old} is deprecated; use {new}[/]", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """`error: MESSAGE` on stderr and exit `code` (2: bad input)."""
    err.print(f"[bold red]error:[/] {safe(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(fn: F) -> F:
    """Turn the library's expected errors into one clear line and exit code 2, no traceback; progress
    bars, where a command asks for them, are drawn on stderr (nowhere with --quiet), so stdout holds only
    what the command prints (`search --json | jq` reads a JSON document, even on a first indexing)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with display(_silent if mode.quiet else err):
                return fn(*args, **kwargs)
        except PromptRetrieverError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def given_options(ctx: typer.Context) -> dict[str, str]:
    """The command's options given on its command line (not left at their defaults): parameter name -> the
    option as its help spells it (`run_dir` -> `--run`)."""
    flags = {p.name: max(p.opts, key=len) for p in ctx.command.params if p.name}
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    given = ("COMMANDLINE", "ENVIRONMENT", "PROMPT")
    return {name: flags.get(name, name) for name, src in sources.items() if src is not None and src.name in given}


# (option, the options it cannot be given with, why); options by parameter name.
Conflicts = tuple[tuple[str, tuple[str, ...], str], ...]


def refuse_conflicts(ctx: typer.Context, rules: Conflicts) -> None:
    """Exit 2 with one clear line when an option is given with one it cannot go with (never ignore one)."""
    given = given_options(ctx)
    for name, others, why in rules:
        clash = [given[o] for o in others if o in given]
        if name in given and clash:
            fail(f"{given[name]} and {', '.join(clash)} cannot be used together: {why}; drop one of them")


def renamed(ctx: typer.Context, new_name: str, old_name: str, new: Any, old: Any) -> Any:
    """The value of an option given under its new spelling or a hidden old one (with a deprecation note);
    both at once exit 2. Options by parameter name."""
    given = given_options(ctx)
    flags = {p.name: max(p.opts, key=len) for p in ctx.command.params if p.name}
    if old_name not in given:
        return new
    if new_name in given:
        fail(f"{flags[new_name]} and {flags[old_name]} are one option: give {flags[new_name]} only")
    deprecated(flags[old_name], flags[new_name])
    return old


def print_report(report: CorpusReport, limit: int = 200, verbose: bool = False) -> None:
    """Every error; of each kind of repair the first few and a count (every one when `verbose` or
    --verbose; only the errors with --quiet)."""
    listing = report.listing(verbose=verbose or mode.verbose)
    issues = [i for i in listing.issues if i.severity == "error"] if mode.quiet else listing.issues
    for issue in issues[:limit]:
        color = "red" if issue.severity == "error" else "yellow"
        err.print(f"[{color}]{safe(issue)}[/]", highlight=False, markup=True, soft_wrap=True)
    if len(issues) > limit:
        err.print(f"... and {len(issues) - limit} more issues")
    if mode.quiet:
        return
    for line in listing.summary:
        err.print(f"[yellow]{safe(line)}[/]", highlight=False, soft_wrap=True)
