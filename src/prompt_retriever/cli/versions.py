"""`promote`, `rollback` and `history`: which run of a runs folder is the current one (`serve --runs DIR`
serves it and switches when it changes), with a record of who changed it when (`search.versions`).

    prompt-retriever promote runs/run-b        run-b becomes current
    prompt-retriever rollback runs             back to the run current before it
    prompt-retriever history runs [--json]     every change, oldest first
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..search.versions import Entry, read_current, read_history, rollback
from ..search.versions import promote as promote_run
from .app import app
from .options import JsonOpt
from .output import out, reports_errors, safe

ByOpt = Annotated[
    str | None, typer.Option("--by", help="Who makes the change, for the history. Default: this OS user's name.")
]


def _said(entry: Entry) -> str:
    was = f" (was {entry.previous})" if entry.previous else ""
    return (
        f"{entry.run} is now the current run{was}: model {entry.model_fingerprint}, corpus "
        f"{entry.corpus_fingerprint}; by {entry.by} at {entry.at}"
    )


@app.command()
@reports_errors
def promote(
    run_dir: Annotated[Path, typer.Argument(help="The run to make current: a folder inside a runs folder.")],
    by: ByOpt = None,
) -> None:
    """Make a run the current one of its runs folder (`serve --runs` switches to it), recorded in the
    folder's history. Refuses a folder that is not a complete run, and the run already current."""
    out.print(safe(_said(promote_run(run_dir, by=by))), highlight=False, soft_wrap=True)


@app.command("rollback")
@reports_errors
def rollback_cmd(
    runs: Annotated[Path, typer.Argument(help="The runs folder.")],
    by: ByOpt = None,
) -> None:
    """Make the run that was current before the current one current again (recorded in the history)."""
    out.print(safe(_said(rollback(runs, by=by))), highlight=False, soft_wrap=True)


@app.command()
@reports_errors
def history(
    runs: Annotated[Path, typer.Argument(help="The runs folder.")],
    as_json: JsonOpt = False,
) -> None:
    """Every promote and rollback of a runs folder, oldest first, and which run is current."""
    entries = read_history(runs)
    if as_json:
        print(json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        out.print(safe(f"{runs}: no run was ever promoted here"), highlight=False)
        return
    table = Table("#", "when (UTC)", "action", "run", "was", "by", "model", "corpus")
    for e in entries:
        table.add_row(
            str(e.seq), e.at, e.action, *(safe(x) for x in (e.run, e.previous or "", e.by)),
            safe(e.model_fingerprint), safe(e.corpus_fingerprint),
        )  # fmt: skip
    out.print(table)
    current = read_current(runs)
    if current is not None:
        out.print(safe(f"current: {current.run} since {current.at}"), highlight=False)
