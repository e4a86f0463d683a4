"""`search` and `index`: search prompts from the command line, save an index of a corpus, and change a
saved index or a run's in place (`index add`, `index remove`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..corpus import query_problem
from ..encoding.encoder import DEFAULT_TEMPLATE, DOCUMENT_TEMPLATES
from ..encoding.models import DEFAULT_MODEL
from ..fileio import check_out_dir, staged_files
from .app import FlagHelpGroup, app
from .inputs import RUN_OR_INDEX_CONFLICTS, load_prompts, system_and_model
from .options import (
    BACKENDS,
    AllowDownloadOpt,
    BackendOpt,
    CorpusOpt,
    EngineOpt,
    ForceOpt,
    IndexOpt,
    ModelOpt,
    RunOpt,
    SkipInvalidOpt,
    SystemOpt,
)
from .output import err, fail, given_options, note, out, refuse_conflicts, reports_errors, safe

if TYPE_CHECKING:
    from ..search.retriever import Hit


# Options by parameter name. Shared by search and serve.
@app.command()
@reports_errors
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What you feel like writing about.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=100, help="Number of results.")] = 5,
    genre: Annotated[str | None, typer.Option(help="Only this genre.")] = None,
    theme: Annotated[str | None, typer.Option(help="Only this theme.")] = None,
    run_dir: RunOpt = None,
    system: SystemOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document (the API's shape).")] = False,
    as_jsonl: Annotated[bool, typer.Option("--jsonl", help="Print one JSON object per result.")] = False,
    corpus: CorpusOpt = None,
    index_dir: IndexOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    backend: Annotated[
        str | None,
        typer.Option(
            help=f"Inference backend: {BACKENDS} (the fastest on CPU). Default: the --index or --run "
            "folder's own backend, else torch. Another backend than the index's re-encodes the prompts.",
        ),
    ] = None,
    allow_download: AllowDownloadOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    engine: EngineOpt = "auto",
) -> None:
    """Search prompts: with --run, the system a pipeline run chose; else an index built on first use and
    cached (rebuilt when corpus or model change)."""
    from ..serving.server import build_retriever

    refuse_conflicts(ctx, RUN_OR_INDEX_CONFLICTS)
    if problem := query_problem(query):  # the rule of the API and PromptRetriever.search too
        fail(problem)
    if as_json and as_jsonl:
        fail("--json and --jsonl: choose one")
    kind, model = system_and_model(ctx, system, model)
    retriever = build_retriever(
        run_dir=run_dir,
        system=kind,
        index_dir=index_dir,
        prompts=None if run_dir or index_dir else load_prompts(corpus, skip_invalid),
        model=model,
        backend=backend,
        allow_download=allow_download or None,
        engine=engine,
        announce=lambda line: err.print(f"[dim]{safe(line)}[/]", highlight=False, soft_wrap=True),  # stdout: results
    )
    t0 = time.perf_counter()  # an unknown genre or theme: the retriever's InputError, exit 2
    hits = retriever.search(query, k=k, genre=genre, theme=theme)
    took = round((time.perf_counter() - t0) * 1000, 2)
    info = retriever.describe()
    if drifted := drift_note(info, run=retriever.run_info is not None):  # on stderr, even with --json
        err.print(f"[dim]{safe(drifted)}[/]", highlight=False, soft_wrap=True)
    if as_jsonl:
        for h in hits:
            print(json.dumps(h.to_dict(), ensure_ascii=False))
        return
    if as_json:
        print(json.dumps(search_document(query, k, genre, theme, took, hits), ensure_ascii=False, indent=2))
        return
    score = f" · test NDCG@10 {info['test_ndcg@10']:.2f}" if info.get("test_ndcg@10") is not None else ""
    note(f"[dim]{safe(info['system'])}{score}[/]")
    if not hits:
        out.print("no prompts match those filters")
    for h in hits:
        p = h.prompt
        out.print(
            f"[bold]{h.rank}. {safe(p.title)}[/]  [dim]{safe(p.genre)} · {safe(p.theme)} · {h.score:.3f}[/]",
            highlight=False,
        )
        out.print(f"   {safe(p.text)}", highlight=False, soft_wrap=True)


def search_document(query: str, k: int, genre: str | None, theme: str | None, took_ms: float, hits: list[Hit]) -> dict:
    """`search --json`: the API's /api/search response, built by the API's own schema."""
    from ..serving.schemas import SearchOut

    return SearchOut.build(query, k, genre, theme, took_ms, hits).model_dump(mode="json")


def drift_note(info: dict, run: bool = True) -> str | None:
    """One line on how far the collection moved since its system was chosen (`run`) or its index was
    built (None: not at all)."""
    drift = info.get("drift") or {}
    if not any(drift.values()):
        return None
    since = "this system was chosen (its numbers were measured before)" if run else "the index was built"
    return (
        f"note: {drift['added']} prompt(s) added, {drift['updated']} updated, {drift['removed']} removed since {since}"
    )


index_app = typer.Typer(
    cls=FlagHelpGroup,
    help="Embed a corpus and save the index (`index -c FILE --out DIR`); `index add` and `index remove` "
    "change a saved index or a run's in place.",
)
app.add_typer(index_app, name="index")


@index_app.callback(invoke_without_command=True)
@reports_errors
def index(
    ctx: typer.Context,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Folder to write the index to.")] = None,
    corpus: CorpusOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    template: Annotated[
        str,
        typer.Option(help=f"Text embedded per prompt: {', '.join(DOCUMENT_TEMPLATES)} or a format string."),
    ] = DEFAULT_TEMPLATE,
    backend: BackendOpt = "torch",
    allow_download: AllowDownloadOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    force: ForceOpt = False,
) -> None:
    """Embed a corpus and save the index (embeddings.npy, prompts.jsonl, manifest.json). `index add` and
    `index remove` change a saved index or a run's in place."""
    from ..search.retriever import PromptRetriever

    if ctx.invoked_subcommand is not None:
        if given := given_options(ctx):
            fail(f"{', '.join(sorted(given.values()))}: give the options after `index {ctx.invoked_subcommand}`")
        return
    if out_dir is None:
        fail("Missing option '--out' / '-o': the folder to write the index to")
    check_out_dir(out_dir, "index", force=force)
    prompts = load_prompts(corpus, skip_invalid)
    r = PromptRetriever(
        model, template=template, show_progress=True, allow_download=allow_download or None, backend=backend
    )
    r.index(prompts)
    with staged_files(out_dir, "index", last=("manifest.json",)) as staged:  # a full disk keeps the old index
        r.save(staged)
    out.print(f"indexed {len(r)} prompts with {safe(r.fingerprint)} into {safe(out_dir)}")


LiveIndexOpt = Annotated[Path | None, typer.Option("--index", help="The saved index folder to change.")]
LiveRunOpt = Annotated[Path | None, typer.Option("--run", help="A pipeline run whose index to change.")]


def _open_live(run_dir: Path | None, index_dir: Path | None, allow_download: bool):
    from ..search.retriever import PromptRetriever

    if run_dir is not None:
        return PromptRetriever.from_run(run_dir, allow_download=allow_download or None)
    return PromptRetriever.load(index_dir, allow_download=allow_download or None)  # type: ignore[arg-type]


def _changed(retriever, target: Path, line: str) -> None:
    counts = retriever.drift.counts()
    since = "its system was chosen" if retriever.run_info else "it was built"
    out.print(f"{safe(line)} in {safe(target)}", highlight=False, soft_wrap=True)
    note(f"[dim]since {since}: {counts['added']} added, {counts['updated']} updated, {counts['removed']} removed[/]")


@index_app.command("add")
@reports_errors
def index_add(
    corpus: Annotated[
        list[Path], typer.Option("--corpus", "-c", help="Corpus file(s) of the prompts to add or update, by id.")
    ],
    index_dir: LiveIndexOpt = None,
    run_dir: LiveRunOpt = None,
    new_only: Annotated[
        bool, typer.Option("--new-only", help="Refuse ids the index holds already (never update one).")
    ] = False,
    allow_download: AllowDownloadOpt = False,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Add prompts to a saved index or a run's, or update those whose id it holds; written whole beside
    the index and swapped in. A run keeps serving its chosen system and records how far it drifted."""
    from ..search.live import index_folder, locked, plan_changes

    target = index_folder(run_dir=run_dir, index_dir=index_dir)
    prompts = load_prompts(corpus, skip_invalid)  # FILE:LINE for every bad line, exit 2
    with locked(target):
        retriever = _open_live(run_dir, index_dir, allow_download)
        changes = plan_changes(retriever._by_id, prompts, new_only=new_only)
        retriever.add(changes.to_write)
        if changes.to_write:
            retriever.save_live()
    line = f"added {len(changes.added)}, updated {len(changes.updated)} prompt(s)"
    _changed(retriever, target, line + (f" ({len(changes.unchanged)} unchanged)" if changes.unchanged else ""))


@index_app.command("remove")
@reports_errors
def index_remove(
    ids: Annotated[list[str], typer.Argument(help="Ids of the prompts to remove.")],
    index_dir: LiveIndexOpt = None,
    run_dir: LiveRunOpt = None,
    allow_download: AllowDownloadOpt = False,
) -> None:
    """Remove prompts by id from a saved index or a run's (an unknown id changes nothing and exits 2)."""
    from ..search.live import index_folder, locked

    target = index_folder(run_dir=run_dir, index_dir=index_dir)
    with locked(target):
        retriever = _open_live(run_dir, index_dir, allow_download)
        removed = retriever.remove(ids)
        retriever.save_live()
    _changed(retriever, target, f"removed {removed} prompt(s)")
