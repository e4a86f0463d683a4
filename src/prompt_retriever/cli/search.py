"""`search` and `index`: search prompts from the command line, and save an index of a corpus."""

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
from .app import app
from .inputs import RUN_OR_INDEX_CONFLICTS, load_prompts, system_and_model
from .options import (
    BACKENDS,
    AllowDownloadOpt,
    BackendOpt,
    CorpusOpt,
    ForceOpt,
    IndexOpt,
    ModelOpt,
    RunOpt,
    SkipInvalidOpt,
    SystemOpt,
)
from .output import fail, note, out, refuse_conflicts, reports_errors, safe

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
    )
    t0 = time.perf_counter()  # an unknown genre or theme: the retriever's InputError, exit 2
    hits = retriever.search(query, k=k, genre=genre, theme=theme)
    took = round((time.perf_counter() - t0) * 1000, 2)
    if as_jsonl:
        for h in hits:
            print(json.dumps(h.to_dict(), ensure_ascii=False))
        return
    if as_json:
        print(json.dumps(search_document(query, k, genre, theme, took, hits), ensure_ascii=False, indent=2))
        return
    info = retriever.describe()
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


@app.command()
@reports_errors
def index(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the index to.")],
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
    """Embed a corpus and save the index (embeddings.npy, prompts.jsonl, manifest.json)."""
    from ..search.retriever import PromptRetriever

    check_out_dir(out_dir, "index", force=force)
    prompts = load_prompts(corpus, skip_invalid)
    r = PromptRetriever(
        model, template=template, show_progress=True, allow_download=allow_download or None, backend=backend
    )
    r.index(prompts)
    with staged_files(out_dir, "index", last=("manifest.json",)) as staged:  # a full disk keeps the old index
        r.save(staged)
    out.print(f"indexed {len(r)} prompts with {safe(r.fingerprint)} into {safe(out_dir)}")
