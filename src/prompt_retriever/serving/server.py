"""Build the retriever a server uses (saved index or corpus, inference backend, vector store) and serve it
with the runtime tuned for serving (threads per batch worker, garbage collector, uvicorn); SIGHUP reloads
what is served (`LiveState.reload`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..corpus import Prompt
from ..encoding.encoder import Encoder
from ..encoding.models import DEFAULT_MODEL
from ..errors import InputError
from ..search.qdrant_connection import server_url
from ..search.retriever import PromptRetriever
from ..settings import ADMIN_TOKEN_ENV, MIN_ADMIN_TOKEN_CHARS, admin_token
from .live import LiveState, Loader

if TYPE_CHECKING:
    from ..feedback.explore import Explorer
    from ..feedback.owner import OwnerJudgments
    from ..feedback.recorder import FeedbackRecorder
    from .experiment import Experiment


def build_retriever(
    *,
    run_dir: Path | None = None,
    system: str | None = None,
    index_dir: Path | None = None,
    prompts: Sequence[Prompt] | None = None,
    model: str = DEFAULT_MODEL,
    backend: str | None = None,
    qdrant_url: str | None = None,
    qdrant_path: str | None = None,
    allow_download: bool | None = None,
    engine: str = "exact",
    announce: Callable[[str], None] | None = None,
) -> PromptRetriever:
    """The retriever to serve: a pipeline run's chosen system (`run_dir`, exactly as measured), a saved index,
    or `prompts` indexed with `model`; `system` (dense, bm25, hybrid, hybrid-rrf) builds one by hand.
    `backend` None: the run's or index's own backend, else torch. Documents and queries always come from
    the same backend: asking for another one than the index's re-encodes the prompts with it. `engine`:
    where searches run (`PromptRetriever.use_engine`; `announce` hears of an engine index being built)."""
    from ..search.indexcache import cached_retriever

    if run_dir is not None:
        if system is not None or index_dir is not None:
            raise InputError("--run serves the run's chosen system: drop --system and --index")
        retriever = PromptRetriever.from_run(run_dir, backend=backend, allow_download=allow_download)
    elif index_dir is not None:
        extra = {"system": system} if system else {}
        retriever = PromptRetriever.load(index_dir, allow_download=allow_download, **extra)
        if backend is not None and retriever.encoder.backend != backend:
            retriever.use_encoder(
                Encoder(retriever.model_name, show_progress=True, allow_download=allow_download, backend=backend)
            )
    else:
        if not prompts:
            raise InputError("no prompts to serve")
        retriever = cached_retriever(
            prompts,
            model,
            show_progress=True,
            allow_download=allow_download,
            backend=backend or "torch",
            system=system,
        )
        retriever.source = None  # the index cache is no place for live updates
    if qdrant_url:
        server_url(qdrant_url)
    if qdrant_url or qdrant_path:
        if engine in ("exact", "edge"):
            raise InputError(f"--engine {engine} and a Qdrant server: searches run in one of them; drop one")
        retriever.use_engine("qdrant", location=qdrant_url or qdrant_path, announce=announce)
    else:
        retriever.use_engine(engine, announce=announce)
    retriever.encoder.encode_queries(["warm-up"])  # load the model now, so /readyz means ready
    if retriever.engine is None and retriever.system.uses_bm25 and len(retriever):
        retriever.bm25  # noqa: B018 - build the BM25 index now, not in the first search
    return retriever


def reloader(**options) -> Loader:
    """A `Loader` for `LiveState.reload`: with a run folder, that run (with the inference backend and the
    vector store of `options`); without, what `options` (`build_retriever`'s) built at start, read again."""

    def load(run_dir: Path | None) -> PromptRetriever:
        if run_dir is None:
            return build_retriever(**options)
        keep = ("backend", "qdrant_url", "qdrant_path", "allow_download", "engine", "announce")
        return build_retriever(run_dir=Path(run_dir), **{k: options[k] for k in keep if k in options})

    return load


def checked_admin_token() -> str | None:
    """The admin token from the environment; InputError for one too short to be a secret."""
    token = admin_token()
    if token is not None and len(token.strip()) < MIN_ADMIN_TOKEN_CHARS:
        raise InputError(f"{ADMIN_TOKEN_ENV} is shorter than {MIN_ADMIN_TOKEN_CHARS} characters: use a long random one")
    return token.strip() if token else None


def reload_on_sighup(live: LiveState) -> Callable[[], None]:
    """A start-up hook: SIGHUP reloads what is served (off the event loop; a failure is logged and the
    old system keeps serving)."""
    import asyncio
    import logging
    import signal

    from starlette.concurrency import run_in_threadpool

    logger = logging.getLogger("prompt_retriever.serve")

    async def reload() -> None:
        try:
            await run_in_threadpool(live.reload)
        except Exception as exc:  # noqa: BLE001 - reported, never fatal to the server
            logger.error("reload on SIGHUP failed, still serving the old system: %s", exc)

    def install() -> None:
        if hasattr(signal, "SIGHUP"):
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))

    return install


def default_workers(backend: str, cpus: int) -> int:
    """Query batches encoded at once: one per core for the onnx backends (one inference thread each),
    one for torch (its threads are process-wide)."""
    return cpus if backend != "torch" else 1


def tune_runtime(retriever: PromptRetriever, workers: int, cpus: int) -> None:
    """Give each batch worker its share of the cores and take the long-lived index out of GC scans."""
    import gc

    from threadpoolctl import threadpool_limits

    # Each batch worker gets its share of the cores: ONNX Runtime threads here, BLAS (the vector search)
    # below. Oversubscribed, OpenBLAS threads spin against each other (measured: 700 -> 510 requests/s).
    retriever.encoder.set_threads(max(1, cpus // workers))
    threadpool_limits(limits=max(1, cpus // workers), user_api="blas")
    # The index, model and tokenizer are long-lived: keep them out of the garbage collector's full
    # scans, which otherwise pause the server for tens of milliseconds under load (p99 303 -> 124 ms).
    gc.collect()
    gc.freeze()


def ensure_file_limit(needed: int) -> int:
    """Raise this process's open-file limit towards `needed` (within the hard limit); the limit after.
    Every connection is a file descriptor, and a common default soft limit (1024) is below the guard's
    caps: accept() would fail with EMFILE before the guard could refuse anything."""
    import logging
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # pragma: no cover (a sandbox that forbids it)
            pass
        if soft < needed:
            logging.getLogger("prompt_retriever.serve").warning(
                "open-file limit %d is below the %d the connection caps need: lower --max-connections", soft, needed
            )
    return soft


LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


# Loggers whose INFO lines a server prints (the access log, start-up, uvicorn's); the libraries' only from
# WARNING up (bm25s logs "Building index" at DEBUG on a logger of its own level), unless `libraries`.
SERVER_LOGGERS = ("prompt_retriever", "uvicorn")


def configure_logging(*, libraries: bool = False) -> None:
    """INFO to stderr, for the access log. Called first thing by `serve` (the command), before any model
    or index loads: a library that logs before logging is configured (ONNX Runtime's quantiser did, on a
    first start) makes Python install its own WARNING-level handler, and the access log went missing.
    So this replaces whatever the root logger has, unless it is already ours (idempotent). The libraries'
    messages below WARNING are left out, unless `libraries` (`--verbose`)."""
    import logging

    def server_or_warning(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or (libraries and record.levelno >= logging.INFO):
            return True
        return record.levelno >= logging.INFO and record.name.split(".")[0] in SERVER_LOGGERS

    root = logging.getLogger()
    if any(getattr(h, "_prompt_retriever", False) for h in root.handlers):
        return
    from .api import log, log_safe

    class SafeFormatter(logging.Formatter):
        """Every record's message with its control characters escaped: libraries log paths and names
        (a model folder's) that the server did not write, and those must not reach a terminal raw."""

        def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
            if record.name != log.name:  # the access log escapes its fields itself (`log_safe`), once
                record.message = log_safe(record.message)
            return super().formatMessage(record)

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, force=True)
    for h in root.handlers:
        h.setFormatter(SafeFormatter(LOG_FORMAT))
        h.addFilter(server_or_warning)
        h._prompt_retriever = True  # type: ignore[attr-defined]


def serve(
    retriever: PromptRetriever,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_queries: bool = False,
    cors_origins: Sequence[str] = (),
    workers: int | None = None,
    announce: Callable[[str], object] | None = None,
    header_timeout: float = 10.0,
    max_connections: int = 1024,
    max_connections_per_ip: int = 512,
    refuse_delay: float = 2.0,
    max_pipeline: int = 16,
    event_loop: str = "asyncio",
    loader: Loader | None = None,
    runs_dir: Path | None = None,
    feedback: FeedbackRecorder | None = None,
    feedback_rate: float | None = None,
    experiment: Experiment | None = None,
    judgments: OwnerJudgments | None = None,
    explorer: Explorer | None = None,
) -> None:
    """Serve the HTTP API and web page over `retriever` until stopped. `workers` None: see
    `default_workers`. `announce` gets the one-line "serving ... on http://host:port/" before start-up.
    `header_timeout`, `max_connections`, `max_connections_per_ip`, `refuse_delay`, `max_pipeline` (requests
    queued behind the one in progress on a connection): the connection guard's limits (`serving.guard`;
    request heads are also capped at 16 KB). `event_loop`: "asyncio" (default: it accepts every waiting
    connection at once, where uvloop took one per loop turn, so a visitor's connection waited behind a
    burst of others) or "uvloop" (a few percent more requests a second when saturated).
    `loader` (see `reloader`): what SIGHUP and `POST
    /api/admin/reload` load; the write and admin routes are on with `PROMPT_RETRIEVER_ADMIN_TOKEN` set.
    `runs_dir`: switch to the current run of that runs folder whenever it changes (`watch`).
    `feedback`: record searches and take events (POST /api/events, at most `feedback_rate` a second per
    client address); closed (its queue written) at exit. `experiment`: a candidate run answers its share of
    the searches (`experiment`; it needs `feedback`). `explorer`: a share of the other searches answered with
    one adjacent pair swapped (`feedback.explore`; it needs `feedback`). `judgments`: the owner's judging page (/judge)
    saves to it; it needs the admin token."""
    import os

    import uvicorn

    from .api import create_app
    from .guard import ConnectionGuard, guarded_protocol

    configure_logging()
    token = checked_admin_token()
    ensure_file_limit(2 * max_connections + 256)  # the connections, the refusals held, the model and index
    guard = ConnectionGuard(
        header_timeout=header_timeout,
        max_connections=max_connections,
        max_per_ip=max_connections_per_ip,
        refuse_delay=refuse_delay,
        max_pipeline=max_pipeline,
    )
    backend = retriever.encoder.backend
    if announce is not None:
        announce(f"serving {len(retriever)} prompts ({retriever.fingerprint}, {backend}) on http://{host}:{port}/")
    cpus = os.cpu_count() or 1
    workers = workers or default_workers(backend, cpus)
    if experiment is not None:  # before tune_runtime: the candidate's index is long-lived too
        experiment.state.retriever.encoder.set_threads(max(1, cpus // workers))
    tune_runtime(retriever, workers, cpus)

    def load(run_dir: Path | None) -> PromptRetriever:
        new = loader(run_dir)  # type: ignore[misc]
        new.encoder.set_threads(max(1, cpus // workers))
        return new

    app = create_app(
        retriever,
        log_queries=log_queries,
        cors_origins=cors_origins,
        batch_workers=workers,
        admin_token=token,
        loader=load if loader is not None else None,
        feedback=feedback,
        feedback_rate=feedback_rate,
        judgments=judgments,
        experiment=experiment,
        explorer=explorer,
    )
    if feedback is not None:
        app.router.add_event_handler("shutdown", feedback.close)  # writes what is queued, then closes the store
    app.router.add_event_handler("startup", reload_on_sighup(app.state.live))
    if runs_dir is not None:
        from .watch import watch_runs

        start_watching, stop_watching = watch_runs(app.state.live, runs_dir)
        app.router.add_event_handler("startup", start_watching)
        app.router.add_event_handler("shutdown", stop_watching)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,  # ours (api.AccessLog) escapes what it logs and leaves out query text
        http=guarded_protocol(guard),  # uvicorn's httptools protocol plus the connection guard
        ws="none",  # no WebSocket routes: upgrade requests are answered as plain HTTP
        timeout_keep_alive=5,
        loop=event_loop,
        limit_concurrency=None,  # the guard caps connections (per address and in total) instead
    )
