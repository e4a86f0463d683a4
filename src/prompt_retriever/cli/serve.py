"""`serve` and `demo`: the HTTP API and web page, and a few example searches over the bundled corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..encoding.models import DEFAULT_MODEL
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
from .output import fail, mode, note, out, refuse_conflicts, reports_errors, safe


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
    if runs is not None:
        from ..search.versions import current_run_dir

        run_dir = current_run_dir(runs)  # InputError: no runs folder, or no current run in it yet
    # before any model or index loads: a library logging first would take the root logger
    configure_logging(libraries=mode.verbose)
    checked_admin_token()  # a token too short to be a secret: refused before anything loads
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
        loader=reloader(**options) if runs is None else current_loader(runs, reloader(**options)),
        runs_dir=runs,
        feedback=recorder,
        feedback_rate=feedback_rate,
    )


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
