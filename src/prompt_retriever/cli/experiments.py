"""`experiments report`: which of two runs writers prefer, from an experiment `serve --candidate RUN` ran on
live traffic (`feedback.experiments`).

    prompt-retriever experiments report --feedback feedback.db                        every experiment
    prompt-retriever experiments report --feedback feedback.db --experiment run-b --runs runs/ --json

STORE is the SQLite file or the `postgresql://` URL the server was given. With `--runs`, each run's offline
numbers (those it was chosen on, from its system.json) are shown beside the live ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import InputError
from .app import FlagHelpGroup, app
from .options import JsonOpt
from .output import note, out, reports_errors, safe

if TYPE_CHECKING:
    from ..feedback.experiments import ExperimentReport, OfflineNumbers

experiments_app = typer.Typer(
    cls=FlagHelpGroup,
    help="Experiments between the current run and a candidate on live traffic (`serve --candidate`).",
    no_args_is_help=True,
)
app.add_typer(experiments_app, name="experiments")


@experiments_app.command("report")
@reports_errors
def report(
    store: Annotated[
        str,
        typer.Option("--feedback", help="The feedback store: the SQLite file or postgresql:// URL given to serve."),
    ],
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="Only this experiment (default: every one the store holds).")
    ] = None,
    runs: Annotated[
        Path | None,
        typer.Option("--runs", help="The runs folder of the runs compared: show the numbers each was chosen on."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wins, losses and ties (interleave) or click-through rates (ab) of each experiment, the test, the
    offline numbers of both runs, and a recommendation: promote the candidate, keep the current run, or
    collect more."""
    from ..feedback import open_store
    from ..feedback.experiments import reports

    if runs is not None and not runs.is_dir():
        raise InputError(f"{runs}: no such runs folder")
    if "://" not in store and not Path(store).expanduser().is_file():
        raise InputError(f"no feedback store at {store}: give the file serve --feedback wrote")
    s = open_store(store)
    try:
        found = reports(s, experiment, numbers_in(runs) if runs is not None else None)
    finally:
        s.close()
    if as_json:
        out.print(json.dumps([r.to_dict() for r in found], indent=2), highlight=False, soft_wrap=True)
        return
    if not found:
        note("no experiments in this feedback store yet (`serve --candidate RUN` runs one)")
    for i, r in enumerate(found):
        if i:
            out.print()
        for line in report_lines(r, with_runs=runs is not None):
            out.print(safe(line), highlight=False, soft_wrap=True)


def numbers_in(runs: Path) -> Callable[[str], OfflineNumbers]:
    """A run's offline numbers by its name: those of `runs/NAME`'s system.json (`serving.experiment.run_numbers`)."""
    from ..serving.experiment import run_numbers

    def numbers(run: str) -> OfflineNumbers:
        return run_numbers(runs / run)

    return numbers


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def report_lines(r: ExperimentReport, *, with_runs: bool) -> list[str]:
    """The report `r` as plain lines (not yet escaped for the terminal)."""
    span = f"{r.first:%Y-%m-%d %H:%M} to {r.last:%Y-%m-%d %H:%M} UTC"
    lines = [
        f"experiment {r.experiment} ({r.mode}): {r.searches} searches from {span}",
        f"  current {', '.join(r.current_runs)}; candidate {r.candidate_run}",
    ]
    if r.interleave is not None:
        c = r.interleave
        lines += [
            f"  candidate wins {c.wins}, loses {c.losses}, ties {c.ties}; {c.no_clicks} searches without a click",
            f"  results clicked: {c.candidate_clicks} of the candidate's team, {c.current_clicks} of the current's",
        ]
    for arm in r.arms or ():
        ctr = "-" if arm.ctr is None else f"{arm.ctr:.1%}"
        lines.append(f"  {arm.arm}: {arm.searches} searches, {arm.clicked} with a click (click-through rate {ctr})")
    p = "not yet (nothing to compare)" if r.p_value is None else f"p = {r.p_value:.4g}"
    lines.append(f"  {r.test}: {p}")
    if with_runs:
        lines.append("  offline (the numbers each run was chosen on):")
        for n in r.offline:
            if n.problem is not None:
                lines.append(f"    {n.run}: unknown ({n.problem})")
            else:
                lines.append(
                    f"    {n.run}: {n.system} ({n.kind}), dev nDCG@10 {_score(n.dev_ndcg10)}, "
                    f"test nDCG@10 {_score(n.test_ndcg10)}"
                )
    else:
        lines.append("  offline numbers: give --runs DIR to show them")
    lines.append(f"  recommendation: {r.recommendation.reason}")
    return lines
