"""The Typer application and its command groups, with the global options every command shares.

`prompt-retriever [--version] [-q | -v] COMMAND ...`; shell completion through Typer's own
`--install-completion` / `--show-completion`. The commands register themselves on `app`, `corpus_app`
and `queries_app` from their modules (see the package's `__init__`).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .._version import __version__
from .output import fail, out, set_mode


def _flags_without_type(params: list[Any]) -> list[Any]:
    """On/off options (flags) show no `<bool>` type in --help: a flag takes no value."""
    for p in params:
        if getattr(p, "is_flag", False) and getattr(p, "metavar", "") is None:
            p.metavar = ""
    return params


class FlagHelpGroup(TyperGroup):
    """A command group whose --help, and its commands', lists flags as flags (no `<bool>` type)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_type(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None and not isinstance(cmd, TyperGroup):
            _flags_without_type(cmd.params)
            if cmd.get_help_option(ctx) is not None:
                _flags_without_type([cmd.get_help_option(ctx)])
        return cmd


app = typer.Typer(
    cls=FlagHelpGroup,
    help="Search creative-writing prompts, build golden query sets, evaluate and fine-tune retrievers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
corpus_app = typer.Typer(cls=FlagHelpGroup, help="Validate and describe prompt corpus files.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
queries_app = typer.Typer(cls=FlagHelpGroup, help="Golden query sets: generate, split, describe.", no_args_is_help=True)
app.add_typer(queries_app, name="queries")


def _print_version(value: bool) -> None:
    if value:
        out.print(f"prompt-retriever {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print only results and errors: no progress bars, notes or lists of repairs."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Print more: every repair of a corpus or import, and the libraries' log messages."
        ),
    ] = False,
) -> None:
    """Search creative-writing prompts, build golden query sets, evaluate and fine-tune retrievers."""
    if quiet and verbose:
        fail("--quiet and --verbose cannot be used together: choose one")
    set_mode(quiet=quiet, verbose=verbose)
