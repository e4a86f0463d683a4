"""`serve` and `demo`: the HTTP API and web page, and a few example searches over the bundled corpus."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..encoding.models import DEFAULT_MODEL
from ..errors import InputError
from ..search.qdrant_connection import is_server_url
from .app import app
from .inputs import RUN_OR_INDEX_CONFLICTS, load_prompts, system_and_model
from .options import (
    BACKENDS,
    AllowDownloadOpt,
    CorpusOpt,
    EngineOpt,
    IndexOpt,
    ModelOpt,
    RunOpt,
    SkipInvalidOpt,
    SystemOpt,
)
from .output import fail, given_options, mode, note, out, refuse_conflicts, reports_errors, safe


class EventLoop(StrEnum):
    """`serve --event-loop`: uvicorn's `loop` setting."""

    asyncio = "asyncio"
    uvloop = "uvloop"


@app.command()
@reports_errors
def serve(
    ctx: typer.Context,
    run_dir: RunOpt = None,
    runs: Annotated[
        Path | None,
        typer.Option(
            "--runs",
            help="A runs folder: serve its current run (`promote`, `rollback`) and switch when it changes.",
        ),
    ] = None,
    system: SystemOpt = None,
    index_dir: IndexOpt = None,
    corpus: CorpusOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    backend: Annotated[
        str | None,
        typer.Option(
            help=f"Inference backend: {BACKENDS} (the fastest on CPU). Default: the --index "
            "folder's own backend, else torch. Another backend than the index's re-encodes the prompts.",
        ),
    ] = None,
    qdrant_url: Annotated[
        str | None,
        typer.Option(
            help="Search a Qdrant server/cluster (API key from QDRANT_API_KEY): every system, as --engine qdrant."
        ),
    ] = None,
    qdrant_path: Annotated[
        str | None, typer.Option(help="qdrant-client's local mode in this folder (tests; a brute force).")
    ] = None,
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
    event_loop: Annotated[
        EventLoop,
        typer.Option(
            help="The server's event loop. asyncio accepts a burst of new connections at once, so a visitor "
            "is not answered after all of it; uvloop serves a few percent more searches a second when "
            "saturated (see the README's serving table).",
        ),
    ] = EventLoop.asyncio,
    allow_download: AllowDownloadOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    engine: EngineOpt = "auto",
    feedback: Annotated[
        str | None,
        typer.Option(
            help="Record searches and what writers do with the results (off by default): a SQLite file, or a "
            "postgresql:// URL several servers can share. See docs/feedback.md and SECURITY.md.",
        ),
    ] = None,
    feedback_queue: Annotated[
        int, typer.Option(min=1, help="Feedback records waiting to be written; past it they are dropped (counted).")
    ] = 10_000,
    feedback_rate: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Feedback events a second per client address (bursts of 4x, at least 200); behind a proxy "
            "every client has the proxy's address.",
        ),
    ] = 50.0,
    candidate: Annotated[
        Path | None,
        typer.Option(
            "--candidate",
            help="An experiment on live traffic: this run answers --share of the searches beside the run served "
            "(needs --feedback and --run or --runs); `experiments report` says which wins. See docs/feedback.md.",
        ),
    ] = None,
    share: Annotated[
        float, typer.Option("--share", help="With --candidate: the share of searches in the experiment, in (0, 1].")
    ] = 0.2,
    experiment_mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="With --candidate: interleave (both runs answer, their results team-draft interleaved) or ab "
            "(the candidate alone answers its share).",
        ),
    ] = "interleave",
    experiment_name: Annotated[
        str | None, typer.Option("--experiment", help="With --candidate: the experiment's name (default: the run's).")
    ] = None,
    experiment_seed: Annotated[
        int, typer.Option("--experiment-seed", help="With --candidate: the seed of the draws and coin flips.")
    ] = 0,
    explore: Annotated[
        float | None,
        typer.Option(
            "--explore",
            help="With --feedback: answer this share of searches (e.g. 0.1) with one adjacent pair of results "
            "swapped, so that `feedback judgments` can tell how often writers look at each rank apart from how "
            "good the prompts there are. Off by default. See docs/feedback.md.",
        ),
    ] = None,
    explore_seed: Annotated[int, typer.Option("--explore-seed", help="With --explore: the seed of its draws.")] = 0,
    explore_depth: Annotated[
        int,
        typer.Option(
            "--explore-depth",
            min=0,
            max=50,
            help="With --explore: instead of a swap, show one of the DEPTH results below the page in the lower "
            "half of an explored answer, so prompts the system ranks too low can still be clicked and judged "
            "(0: swap neighbours). Not with --candidate.",
        ),
    ] = 0,
    judgments: Annotated[
        Path | None,
        typer.Option(
            "--judgments",
            help="Turn on the judging page /judge (needs PROMPT_RETRIEVER_ADMIN_TOKEN): you rate the top results "
            "of a query 0/1/2 and they are saved to this JSONL file, one line per query, the file `evaluate "
            "--judged` reads. It is your file: an existing one is read at start and extended (judging a query "
            "again merges into its line) and rewritten whole, atomically, on each save.",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API and the web page; the index is loaded or built once at start-up. SIGHUP reloads
    it; with PROMPT_RETRIEVER_ADMIN_TOKEN set, authenticated endpoints change prompts and switch runs."""
    from ..serving.server import build_retriever, checked_admin_token, configure_logging, reloader
    from ..serving.server import serve as run_server
    from ..serving.watch import current_loader

    refuse_conflicts(
        ctx,
        (
            *RUN_OR_INDEX_CONFLICTS,
            (
                "runs",
                ("run_dir", "corpus", "model", "system", "index_dir", "skip_invalid"),
                "--runs serves the current run of the folder, with its corpus, model and system",
            ),
            ("qdrant_url", ("qdrant_path",), "search either a Qdrant server or an embedded Qdrant"),
        ),
    )
    kind, model = system_and_model(ctx, system, model)
    if (qdrant_url or qdrant_path) and engine in ("exact", "edge"):
        fail(f"--engine {engine} and a Qdrant server cannot be used together: searches run in one of them")
    if engine == "qdrant" and not (qdrant_url or qdrant_path):
        fail("--engine qdrant needs a Qdrant server: give --qdrant-url (or --qdrant-path for a local folder)")
    if qdrant_url and not is_server_url(qdrant_url):
        fail(f"--qdrant-url {safe(qdrant_url)} must start with http:// or https:// (--qdrant-path is a local folder)")
    if runs is not None:
        from ..search.versions import current_run_dir

        run_dir = current_run_dir(runs)  # InputError: no runs folder, or no current run in it yet
    explorer = open_explorer(ctx, explore, explore_seed, explore_depth, feedback, candidate)
    check_experiment_options(ctx, candidate, feedback, run_dir, share, experiment_mode, experiment_name)
    # before any model or index loads: a library logging first would take the root logger
    configure_logging(libraries=mode.verbose)
    token = checked_admin_token()  # a token too short to be a secret: refused before anything loads
    owner = open_judgments(judgments, token)  # a file that cannot be read or written: refused before loading
    recorder = open_feedback(feedback, feedback_queue)  # a store that cannot be opened: refused before loading
    options = dict(
        run_dir=run_dir,
        system=kind,
        index_dir=index_dir,
        prompts=None if run_dir or index_dir else load_prompts(corpus, skip_invalid),
        model=model,
        backend=backend,
        qdrant_url=qdrant_url,
        qdrant_path=qdrant_path,
        allow_download=allow_download or None,
        engine=engine,
        announce=lambda line: note(f"[dim]{safe(line)}[/]"),
    )
    retriever = build_retriever(**options)
    experiment = open_experiment(
        candidate, reloader(**options), share, experiment_mode, experiment_name, experiment_seed
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
        event_loop=event_loop.value,
        loader=reloader(**options) if runs is None else current_loader(runs, reloader(**options)),
        runs_dir=runs,
        feedback=recorder,
        feedback_rate=feedback_rate,
        judgments=owner,
        experiment=experiment,
        explorer=explorer,
    )


def open_explorer(
    ctx: typer.Context, share: float | None, seed: int, depth: int, feedback: str | None, candidate: Path | None
):
    """The `Explorer` of `--explore` (None: off); exit 2 for --explore without --feedback (it would only
    change writers' answers, with no log to learn from), --explore-seed or --explore-depth without
    --explore, or --explore-depth with --candidate (an experiment's answers are never explored)."""
    if share is None:
        for name, flag in (("explore_seed", "--explore-seed"), ("explore_depth", "--explore-depth")):
            if name in given_options(ctx):
                fail(f"{flag} belongs to --explore: give --explore SHARE too, or drop it")
        return None
    if feedback is None:
        fail("--explore needs --feedback STORE: explored searches are only worth their swap when the log keeps them")
    if depth and candidate is not None:
        fail("--explore-depth and --candidate conflict: searches in an experiment are never explored")
    from ..feedback.explore import Explorer

    return Explorer(share, seed=seed, depth=depth)  # InputError for a share outside (0, 1]


def open_judgments(path: Path | None, token: str | None):
    """The owner's `OwnerJudgments` of `path` (None: no judging page); an error without an admin token or
    when the file cannot be read or written, or a line of it is not a judged query."""
    if path is None:
        return None
    if token is None:
        fail("--judgments turns on the owner's judging page, which needs PROMPT_RETRIEVER_ADMIN_TOKEN set")
    from ..feedback.owner import OwnerJudgments

    owner = OwnerJudgments.load(path)
    note(f"judging page on: /judge saves to {safe(str(owner.path))} ({len(owner)} queries judged so far)")
    return owner


EXPERIMENT_OPTIONS = ("share", "experiment_mode", "experiment_name", "experiment_seed")


def check_experiment_options(
    ctx: typer.Context,
    candidate: Path | None,
    feedback: str | None,
    served: Path | None,
    share: float,
    mode_: str,
    name: str | None,
) -> None:
    """Exit 2 for an experiment's option without --candidate; InputError for --candidate without
    --feedback or a run `served`, a candidate that is the run served or not a complete run, or a share,
    mode or name out of range (all before anything loads)."""
    given = given_options(ctx)
    if candidate is None:
        if stray := [given[o] for o in EXPERIMENT_OPTIONS if o in given]:
            fail(f"{', '.join(stray)} set up an experiment: give --candidate RUN too, or drop them")
        return
    if feedback is None:
        fail("--candidate needs --feedback STORE: an experiment's searches and clicks are kept there")
    if served is None:
        fail("--candidate compares two runs: serve one with --run RUN or --runs DIR")
    from ..search.versions import check_run
    from ..serving.experiment import check_setup

    check_setup(share, mode_, name)
    if candidate.resolve() == served.resolve():
        raise InputError(f"--candidate {candidate} is the run served: give another run to compare it with")
    check_run(candidate)  # a folder that is not a complete run: a clear error before anything loads


def open_experiment(candidate: Path | None, loader, share: float, mode_: str, name: str | None, seed: int):
    """The `Experiment` of `candidate` (None: none), loaded with `loader`, the runs' own loader (its
    options checked by `check_experiment_options`)."""
    if candidate is None:
        return None
    from ..serving.experiment import Experiment

    experiment = Experiment(loader(candidate), share=share, mode=mode_, name=name, seed=seed)
    note(
        f"experiment {safe(experiment.name)} on: {experiment.mode}, candidate {safe(experiment.candidate_run)}, "
        f"share {share:g} of the searches, seed {seed}"
    )
    return experiment


def open_feedback(target: str | None, capacity: int):
    """The `FeedbackRecorder` over the store at `target` (None: feedback off); InputError if it cannot be opened."""
    if target is None:
        return None
    from ..feedback import FeedbackRecorder, open_store, shown

    recorder = FeedbackRecorder(open_store(target), capacity=capacity)
    note(f"feedback on: searches and events are kept in {safe(shown(target))}")
    return recorder


EXAMPLE_QUERIES = [
    ("haunted lighthouse", None),
    ("memoir about food", None),
    ("a story about grief", None),
    ("first love on a night train", "Romance"),
    ("teach someone a skill", None),
]


@app.command()
@reports_errors
def demo(model: ModelOpt = DEFAULT_MODEL, allow_download: AllowDownloadOpt = False) -> None:
    """Index the bundled corpus and run a few example searches."""
    from ..search.indexcache import cached_retriever

    prompts = load_prompts(None)
    retriever = cached_retriever(prompts, model, show_progress=True, allow_download=allow_download or None)
    note(f"[bold]{len(retriever)} bundled prompts indexed with {safe(retriever.fingerprint)}[/]")
    for q, genre in EXAMPLE_QUERIES:
        label = f"{q!r}" + (f" (genre {genre})" if genre else "")
        out.print(f"\n[bold cyan]search {safe(label)}[/]")
        for h in retriever.search(q, k=3, genre=genre):
            p = h.prompt
            out.print(f"  {h.rank}. {safe(p.title)} [dim]({safe(p.genre)} · {safe(p.theme)}, {h.score:.3f})[/]")
