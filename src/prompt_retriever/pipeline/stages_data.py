"""The data stages: corpus -> queries -> LLM queries -> split, and the golden sets loaded after the split.

Each stage is a function `stage_<name>(cfg, ctx)` returning its record, with `<name>_key(cfg, ctx)`, its
inputs, next to it (see `stages.PIPELINE`).
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from ..corpus import (
    CorpusError,
    Prompt,
    bundled_corpus_paths,
    corpus_fingerprint,
    load_corpus,
    read_corpus,
    read_corpus_bytes,
    write_corpus,
)
from ..errors import InputError
from ..fileio import sha256_bytes, sha256_file
from ..golden.goldenset import GoldenSet, bundled_handwritten_path, load_query_set
from ..golden.reference import Reference
from .config import Context, PipelineConfig


def corpus_key(cfg: PipelineConfig, ctx: Context) -> dict:
    """The files' paths and contents. Each file is read here once and its bytes kept for `stage_corpus`:
    a pipe (`--corpus /dev/stdin`) can be read only once, so hashing it and then parsing it read nothing."""
    if ctx.corpus_data is None:
        ctx.corpus_data = [read_corpus_bytes(f) for f in ctx.files]
    return {
        "files": [(str(f), sha256_bytes(data)) for f, data in zip(ctx.files, ctx.corpus_data, strict=True)],
        "skip_invalid": cfg.skip_invalid,
    }


def stage_corpus(cfg: PipelineConfig, ctx: Context) -> dict:
    if ctx.corpus_data is None:
        corpus_key(cfg, ctx)
    report = read_corpus(ctx.files, data=ctx.corpus_data)
    if report.errors and not cfg.skip_invalid:
        raise CorpusError(report)
    if not report.prompts:  # nothing to run on: refused here, not recorded as a finished stage
        names = ", ".join(str(f) for f in ctx.files)
        raise InputError(f"{names}: no prompts to run the pipeline on ({report.summary()})")
    write_corpus(report.prompts, ctx.out / "corpus.jsonl")
    return {
        "prompts": len(report.prompts),
        "fingerprint": corpus_fingerprint(report.prompts),
        "errors": len(report.errors),
        "warnings": len(report.warnings),
    }


def _prompts(ctx: Context) -> list[Prompt]:
    return load_corpus(ctx.out / "corpus.jsonl")


def _natural_path(cfg: PipelineConfig) -> Path | None:
    from ..golden.natural import bundled_natural_path

    return None if not cfg.natural else Path(cfg.natural_queries or bundled_natural_path())


def queries_key(cfg: PipelineConfig, ctx: Context) -> dict:
    key = {"corpus": ctx.records["corpus"]["fingerprint"], "seed": cfg.seed, "generator": "heuristic/1"}
    natural = _natural_path(cfg)
    return key | ({"natural": sha256_file(natural)} if natural else {})


def stage_queries(cfg: PipelineConfig, ctx: Context) -> dict:
    from ..golden.heuristic import HeuristicConfig, generate_heuristic

    gs = generate_heuristic(_prompts(ctx), HeuristicConfig(seed=cfg.seed))
    natural = _natural_path(cfg)
    if natural:  # natural-language queries of the corpus's prompts (the bundled ones fit the bundled corpus)
        from ..golden.natural import add_natural_queries, read_natural_queries

        gs = add_natural_queries(gs, read_natural_queries(natural), source=natural.name)
    gs.save(ctx.queries_dir)
    return {"fingerprint": gs.fingerprint(), **gs.counts()}


def llm_disabled(cfg: PipelineConfig) -> str | None:
    if cfg.llm_base_url and cfg.llm_model:
        return None
    return "no endpoint configured (--llm-base-url, --llm-model)"


def llm_queries_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {
        "corpus": ctx.records["corpus"]["fingerprint"],
        "model": cfg.llm_model,
        "url": cfg.llm_base_url,
        "generator": "natural/1",
        "seed": cfg.seed,
    }


def stage_llm_queries(cfg: PipelineConfig, ctx: Context) -> dict:
    """Natural-language queries of the collection's own prompts, in the six styles of the bundled set,
    written by the LLM endpoint and checked (see golden/llm_natural.py); the split adds them to the golden
    set as its natural family (train, dev, test)."""
    from ..golden.llm_natural import generate_natural
    from ..golden.llm_queries import LLMConfig

    gs, rep = generate_natural(
        _prompts(ctx), LLMConfig(cfg.llm_base_url, cfg.llm_model, seed=cfg.seed), progress=ctx.progress
    )
    gs.save(ctx.llm_dir)
    return {
        "fingerprint": gs.fingerprint(),
        "kept": rep.kept,
        "dropped": dict(rep.dropped),
        "by_style": dict(rep.by_style),
    }


def split_key(cfg: PipelineConfig, ctx: Context) -> dict:
    key = {"queries": ctx.records["queries"]["fingerprint"], "test": cfg.test, "dev": cfg.dev, "seed": cfg.seed}
    return key | ({"llm": ctx.records["llm-queries"]["fingerprint"]} if "llm-queries" in ctx.records else {})


def stage_split(cfg: PipelineConfig, ctx: Context) -> dict:
    from ..golden.natural import add_generated_queries
    from ..golden.splits import split_by_prompt

    gs = GoldenSet.load(ctx.queries_dir)
    if "llm-queries" in ctx.records:  # the LLM's natural-language queries: a family of train, dev and test
        gs = add_generated_queries(gs, GoldenSet.load(ctx.llm_dir), source=str(ctx.llm_dir))
    gs = split_by_prompt(gs, test=cfg.test, dev=cfg.dev, seed=cfg.seed)
    gs.save(ctx.golden_dir)
    gs.export_pairs_csv(ctx.golden_dir / "pairs.csv")
    return {"fingerprint": gs.fingerprint(), **{k: len(v) for k, v in gs.splits.items()}}


def load_golden(cfg: PipelineConfig, ctx: Context) -> None:
    """After the split: the golden set, the comparison's hand-judged query set (one that fits
    this corpus, if any) and the reference collection (when the golden set has no natural queries)."""
    ctx.golden = GoldenSet.load(ctx.golden_dir)
    ctx.judged = load_query_set(cfg.judged, ctx.golden.corpus)  # None: the bundled set does not fit
    path = cfg.judged or bundled_handwritten_path()
    ctx.judged_name = f"hand-written queries ({path.name})" if ctx.judged else None
    try:
        ctx.reference = reference_for(cfg, ctx.golden)
    except InputError as e:
        if cfg.reference_corpus or cfg.reference_queries:
            raise  # the reference the user named must work
        ctx.console.print(f"[yellow]warning:[/] no reference collection for this run: {escape(str(e))}")


def has_natural(gs: GoldenSet) -> bool:
    """Whether the golden set holds natural-language queries of its own (in any split)."""
    from ..evaluation.choose import NATURAL_KINDS

    return any(q.kind in NATURAL_KINDS for q in gs.queries)


def reference_for(cfg: PipelineConfig, gs: GoldenSet) -> Reference | None:
    """The reference collection for a golden set without natural queries (None when it has its own, when
    `cfg.reference` is off, or when the reference holds nothing beyond the collection's own prompts)."""
    from ..golden.natural import bundled_natural_path
    from ..golden.reference import load_reference

    if not cfg.reference or has_natural(gs):
        return None
    files = cfg.reference_corpus or bundled_corpus_paths()
    queries = cfg.reference_queries or bundled_natural_path()
    return load_reference(files, queries, seed=cfg.seed, exclude=[p.id for p in gs.corpus])


def reference_key(cfg: PipelineConfig, ctx: Context) -> dict:
    """The reference collection's part of a stage's key (nothing without one: those runs keep their key)."""
    ref = ctx.reference
    if ref is None:
        return {}
    return {"reference": {"replay": ref.replay.fingerprint(), "proxy": ref.proxy.fingerprint()}}
