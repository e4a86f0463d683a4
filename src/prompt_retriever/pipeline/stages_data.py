"""The data stages: corpus -> queries -> LLM queries -> split, and the golden sets loaded after the split.

Each stage is a function `stage_<name>(cfg, ctx)` returning its record, with `<name>_key(cfg, ctx)`, its
inputs, next to it (see `stages.PIPELINE`).
"""

from __future__ import annotations

import json
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
from ..fileio import atomic_write_text, sha256_bytes, sha256_file, sha256_text
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
    key |= {"llm": ctx.records["llm-queries"]["fingerprint"]} if "llm-queries" in ctx.records else {}
    return key | feedback_key(cfg, ctx)  # runs without feedback keep their key


def feedback_key(cfg: PipelineConfig, ctx: Context) -> dict:
    """The feedback family's part of the split's key: each judged file's sha256 and the store's judgments'
    (computed here once, kept in `ctx.feedback_text` for `stage_split`), so a changed log reruns the split."""
    if not cfg.feedback and not cfg.feedback_judged:
        return {}
    for path in cfg.feedback_judged:
        if not Path(path).is_file():
            raise InputError(f"{path}: no such judged-feedback file")
    key: dict = {"files": [(str(p), sha256_file(p)) for p in cfg.feedback_judged], "split": "time/1"}
    if cfg.feedback:
        from ..feedback.store import shown

        if ctx.feedback_text is None:
            ctx.feedback_text = store_judgments_text(cfg.feedback)
        key |= {"store": shown(cfg.feedback), "judgments": sha256_text(ctx.feedback_text)}  # no password
    return {"feedback": key | ({"skip_unknown": True} if cfg.feedback_skip_unknown else {})}


def store_judgments_text(target: str) -> str:
    """The judgments of a feedback store (`feedback.judgments.store_judgments`: a click model over its log)
    as JSON lines. A SQLite store that is not there is an error, not an empty store made on the spot."""
    from ..feedback.judgments import store_judgments
    from ..feedback.store import is_postgres, open_store, shown

    if not is_postgres(target) and not Path(target).is_file():
        raise InputError(f"{shown(target)}: no feedback store there (a SQLite file or a postgresql:// URL)")
    store = open_store(target)
    try:
        result = store_judgments(store)
    finally:
        store.close()
    return "".join(json.dumps(q.to_json(), ensure_ascii=False, sort_keys=True) + "\n" for q in result.queries)


def feedback_files(cfg: PipelineConfig, ctx: Context) -> list[Path]:
    """The judged-feedback files of the run: the store's judgments (written to `ctx.feedback_path`) first,
    then the judged files given."""
    files = [Path(p) for p in cfg.feedback_judged]
    if cfg.feedback:
        if ctx.feedback_text is None:
            ctx.feedback_text = store_judgments_text(cfg.feedback)
        files.insert(0, atomic_write_text(ctx.feedback_path, ctx.feedback_text))
    return files


def stage_split(cfg: PipelineConfig, ctx: Context) -> dict:
    from ..golden.natural import add_generated_queries
    from ..golden.splits import split_by_prompt

    gs = GoldenSet.load(ctx.queries_dir)
    if "llm-queries" in ctx.records:  # the LLM's natural-language queries: a family of train, dev and test
        gs = add_generated_queries(gs, GoldenSet.load(ctx.llm_dir), source=str(ctx.llm_dir))
    gs = split_by_prompt(gs, test=cfg.test, dev=cfg.dev, seed=cfg.seed)
    family = None
    if files := feedback_files(cfg, ctx):  # writers' feedback: a family split by time, added as it is split
        from ..golden.feedback_family import add_feedback_family, read_feedback

        read = read_feedback(files, gs.corpus, skip_unknown=cfg.feedback_skip_unknown)
        gs, family = add_feedback_family(gs, read, test=cfg.test, dev=cfg.dev)
        if family.get("warning"):
            ctx.console.print(f"[yellow]warning:[/] {escape(family['warning'])}")
    gs.save(ctx.golden_dir)
    gs.export_pairs_csv(ctx.golden_dir / "pairs.csv")
    # the queries and which split each is in: a new --test/--dev/--seed, or a newer feedback log moving a
    # query from train to test, must retrain and re-evaluate, never reuse a model trained on today's test
    fingerprint = sha256_text(gs.fingerprint() + json.dumps(gs.splits, sort_keys=True))[:16]
    record = {"fingerprint": fingerprint, **{k: len(v) for k, v in gs.splits.items()}}
    return record | ({"feedback": family} if family else {})


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
