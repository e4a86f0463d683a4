"""`feedback export` and `feedback purge`: the log a server kept with `serve --feedback STORE`.

    prompt-retriever feedback export --feedback feedback.db --ubi ubi/         UBI JSON lines (--force: replace)
    prompt-retriever feedback purge --feedback feedback.db --older-than 90d    forget what is older
    prompt-retriever feedback stats --feedback postgresql://user@host/db      how much is kept
    prompt-retriever feedback judgments --feedback feedback.db --out judged.jsonl  graded judgments from clicks

STORE is the SQLite file or the `postgresql://` URL the server was given.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError, OutputDirError
from .app import FlagHelpGroup, app
from .options import JsonOpt
from .output import note, out, reports_errors, safe

feedback_app = typer.Typer(
    cls=FlagHelpGroup, help="The feedback log of `serve --feedback`: export it as UBI, purge it.", no_args_is_help=True
)
app.add_typer(feedback_app, name="feedback")

ForceUbiOpt = Annotated[
    bool,
    typer.Option("--force", help="Replace the ubi_queries.jsonl and ubi_events.jsonl the --ubi folder holds."),
]
StoreOpt = Annotated[
    str,
    typer.Option("--feedback", help="The feedback store: the SQLite file or postgresql:// URL given to serve."),
]


def _open(target: str):
    from ..feedback import open_store

    if "://" not in target and not Path(target).expanduser().is_file():
        raise InputError(f"no feedback store at {target}: give the file serve --feedback wrote")
    return open_store(target)


@feedback_app.command("export")
@reports_errors
def export(
    store: StoreOpt,
    ubi: Annotated[Path, typer.Option("--ubi", help="Write ubi_queries.jsonl and ubi_events.jsonl into this folder.")],
    force: ForceUbiOpt = False,
) -> None:
    """Write the log as UBI 1.3.0 JSON lines (OpenSearch's ubi_queries and ubi_events), for other tools.
    An earlier export in the folder is replaced only with --force; other files there are left alone."""
    from ..feedback import EVENTS_FILE, QUERIES_FILE, export_ubi

    check_ubi_dir(ubi, (QUERIES_FILE, EVENTS_FILE), force=force)  # before any work
    s = _open(store)
    try:
        counts = export_ubi(s, ubi)
    finally:
        s.close()
    note(f"{counts.queries} queries -> {safe(ubi / QUERIES_FILE)}, {counts.events} events -> {safe(ubi / EVENTS_FILE)}")


def check_ubi_dir(folder: Path, names: tuple[str, ...], *, force: bool) -> None:
    """OutputDirError if `folder` is a file, or holds any of `names` (an export) and not `force`."""
    if folder.exists() and not folder.is_dir():
        raise OutputDirError(f"{folder} is a file, not a folder; choose another folder")
    there = [name for name in names if (folder / name).exists() or (folder / name).is_symlink()]
    if there and not force:
        raise OutputDirError(
            f"{folder} already holds {' and '.join(there)}: pass --force to replace them, or choose another folder"
        )


@feedback_app.command("purge")
@reports_errors
def purge(
    store: StoreOpt,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Remove searches and events older than this: 90d, 12h, 30m.")
    ],
) -> None:
    """Remove searches and events older than an age (and every event about a search removed)."""
    from ..feedback import parse_age
    from ..feedback.records import iso, now

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise InputError(f"--older-than {exc}") from None
    s = _open(store)
    try:
        cutoff: datetime = now() - age
        n_queries, n_events = s.purge(cutoff)
    finally:
        s.close()
    out.print(f"removed {n_queries} searches and {n_events} events from before {iso(cutoff)}", highlight=False)


@feedback_app.command("stats")
@reports_errors
def stats(store: StoreOpt, as_json: JsonOpt = False) -> None:
    """How many searches and events the log keeps."""
    import json

    s = _open(store)
    try:
        n_queries, n_events = s.counts()
    finally:
        s.close()
    if as_json:
        out.print(json.dumps({"queries": n_queries, "events": n_events}), highlight=False)
    else:
        out.print(f"{n_queries} searches, {n_events} events", highlight=False)


@feedback_app.command("judgments")
@reports_errors
def judgments(
    store: StoreOpt,
    out_path: Annotated[Path, typer.Option("--out", help="Write the judged queries (JSON lines) to this file.")],
    min_impressions: Annotated[
        int, typer.Option("--min-impressions", min=1, help="Grade only prompts shown at least this often for a query.")
    ] = 3,
    no_position_correction: Annotated[
        bool,
        typer.Option("--no-position-correction", help="Grade plain clicks per impression (no click model)."),
    ] = False,
    chain_window: Annotated[
        float,
        typer.Option(
            "--chain-window",
            min=0,
            help="Query chains: a search left without a copy or use and followed within this many seconds by "
            "the same writer's search for another query counts what that search satisfied for the first one "
            "(0: off).",
        ),
    ] = 600.0,
    force: Annotated[bool, typer.Option("--force", help="Replace the --out file if it exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Grade prompts per query from what writers did (a position-based click model corrects for rank) and
    write judged queries that `evaluate --judged` reads. An existing --out file is replaced only with --force."""
    import json

    from ..feedback.clickmodel import ClickModelConfig
    from ..feedback.judgments import check_judged_out, store_judgments, write_judged

    check_judged_out(out_path, force=force)  # before any work
    config = ClickModelConfig(min_impressions=min_impressions, chain_window_s=chain_window)
    s = _open(store)
    try:
        result = store_judgments(s, config, correct_bias=not no_position_correction)
    finally:
        s.close()
    write_judged(result, out_path, force=force)
    if as_json:
        out.print(json.dumps(result.to_json() | {"out": str(out_path)}), highlight=False, soft_wrap=True)
        return
    grades = result.by_grade
    note(f"{len(result.queries)} queries judged -> {safe(out_path)}")
    note(
        f"pairs graded: {grades[2]} grade 2, {grades[1]} grade 1, {grades[0]} grade 0; "
        f"{result.pairs_below_min} shown fewer than {min_impressions} times (not graded)"
    )
    if chain_window:
        note(f"query chains made {result.pairs_by_chains} pairs grade 2 (writers who rephrased and found them)")
    note(f"{result.n_without_relevant} queries without a relevant prompt (left out), of {result.searches} searches")
    if not result.corrected:
        note("examination by rank: not estimated (--no-position-correction)")
    elif not any(result.theta_support[1:]):
        note("examination by rank: not estimated (no prompt was shown at two ranks for one query): not corrected")
    else:
        note("examination by rank: " + ", ".join(f"{r} {t:.2f}" for r, t in enumerate(result.theta, 1)))
    if not result.converged:
        note("the click model stopped at its iteration limit before converging: the estimates are approximate")
    if result.events_ignored:
        note(f"{result.events_ignored} events ignored (unknown action, or about a search or prompt not in the log)")
