"""Which engine serves a retriever and where its index lives: `resolve_engine` (`auto` by size and
system), `engine_dir` (beside the index folder), and `open_engine`, which opens the engine index built
from these prompts and this model or builds it (`open_edge`: Qdrant Edge generations in a folder;
`open_qdrant`: a collection on a Qdrant server or cluster). An index open in this process is shared by
every retriever of the same prompts (a reload, a live update's copy), as the engines lock their folders.

>>> index = open_engine("edge", "runs/mine/index-edge", prompts, embeddings, template=t, source=s)  # doctest: +SKIP
"""

from __future__ import annotations

import re
import shutil
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..corpus import Prompt
from ..errors import InputError
from .edge import EdgeIndex
from .engine_base import HnswParams
from .qdrant_connection import location_of
from .qdrant_index import META, STATS, QdrantIndex
from .spec import WEIGHTED_KINDS

# -- which engine, and where its index lives ------------------------------------------------------------
ENGINES = ("auto", "exact", "edge", "qdrant")
# `auto` serves the dense system of at least this many prompts from the engine, smaller ones exactly in
# process (where the matrix product is faster). BM25 and the whole-corpus hybrids stay in process: bm25s
# beats the engine's sparse search at every size measured, and proving the whole-corpus fusion from the
# engine's candidates was not faster than the exact path at any size measured, up to 1M (see
# benchmarks/bench_served.py, benchmarks/bench_engine.py and docs/engines.md).
AUTO_MIN_PROMPTS = 10_000
# ... and a weighted hybrid whose fusion is "candidates" (`spec.FUSIONS`: the union's best, which the engine
# answers in one round) from this many: at 100,000 prompts one round over the engine was about as fast as
# the in-process path (p50 14 ms against 20-25 ms, p99 40 against 31-60), at 1,000,000 four times faster
# (p50 19 against 81 ms; docs/engines.md).
AUTO_MIN_PROMPTS_CANDIDATES = 100_000
# BM25 drift tolerated under live updates before every document vector is rewritten (`EdgeIndex.max_drift`)
LIVE_MAX_DRIFT = 0.01


def resolve_engine(engine: str, n_prompts: int, kind: str = "dense", fusion: str = "corpus") -> str:
    """`exact` or `edge` for `engine` (`auto`: edge for a dense system of `AUTO_MIN_PROMPTS` or more, and
    for a weighted hybrid fusing candidates of `AUTO_MIN_PROMPTS_CANDIDATES` or more)."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: use {', '.join(ENGINES)}")
    if engine == "auto":
        if kind == "dense":
            return "edge" if n_prompts >= AUTO_MIN_PROMPTS else "exact"
        one_round = kind in WEIGHTED_KINDS and fusion == "candidates"  # as `SystemSpec.fuses_candidates`
        return "edge" if one_round and n_prompts >= AUTO_MIN_PROMPTS_CANDIDATES else "exact"
    return engine


def engine_dir(index_dir: str | Path, engine: str = "edge") -> Path:
    """Where the engine index of an index folder lives: beside it, `<name>-edge` (a run: `index-edge/`),
    or `<name>-qdrant` (a Qdrant collection's BM25 statistics)."""
    index_dir = Path(index_dir)
    return index_dir.with_name(f"{index_dir.name}-{engine}")


def open_engine(
    engine: str,
    folder: str | Path,
    prompts: Sequence[Prompt],
    embeddings: np.ndarray,
    *,
    template: str,
    source: dict,
    location=None,
    announce: Callable[[str], None] | None = None,
):
    """The engine index `engine` (`edge` or `qdrant`) for these prompts, opened or built (`open_edge`,
    `qdrant_index.open_qdrant`: a collection named after what it was built from, on the server or
    cluster at `location`)."""
    if engine == "edge":
        return open_edge(folder, prompts, embeddings, template=template, source=source, announce=announce)
    if location is None:
        raise InputError("--engine qdrant needs a Qdrant server: give --qdrant-url (or --qdrant-path)")
    import hashlib
    import json

    collection = "prompt-retriever-" + hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:16]
    return open_qdrant(
        folder,
        prompts,
        embeddings,
        location=location,
        collection=collection,
        template=template,
        source=source,
        max_drift=LIVE_MAX_DRIFT,
        announce=announce,
    )


# Engine indexes open in this process, by folder: a second retriever of the same prompts (a reload, a
# live update's copy) shares the open one, as the engine locks its folder against a second opener.
_OPEN: weakref.WeakValueDictionary[Path, EdgeIndex] = weakref.WeakValueDictionary()
_OPEN_LOCK = threading.Lock()


def _generations(folder: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := re.fullmatch(r"gen-(\d{1,9})", p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def open_edge(
    folder: str | Path,
    prompts: Sequence[Prompt],
    embeddings: np.ndarray,
    *,
    template: str,
    source: dict,
    announce: Callable[[str], None] | None = None,
) -> EdgeIndex:
    """The engine index in `folder` built from `source` (corpus and model fingerprints), else a new one
    built there from `prompts` and their `embeddings` (no re-encoding). Each build is a generation
    (`gen-N/`): a stale generation another retriever still serves from stays until it is closed, and
    is removed by a later build. A folder holding anything but generations is refused, never touched."""
    folder = Path(folder)
    with _OPEN_LOCK:
        if folder.exists() and any(not p.name.startswith("gen-") for p in folder.iterdir()):
            raise InputError(f"{folder} exists and is not an engine index: move it away, or serve with --engine exact")
        folder.mkdir(parents=True, exist_ok=True)
        gens = _generations(folder)
        for gen in gens:
            key = gen.resolve()
            index = _OPEN.get(key)
            if index is None and (gen / "edge.json").exists():
                try:
                    index = EdgeIndex.open(gen)
                except Exception:  # noqa: BLE001 - locked by another process, or broken: not this one
                    continue
                _OPEN[key] = index
            if index is not None and index.source == source and len(index) == len(prompts):
                index.max_drift = LIVE_MAX_DRIFT
                return index
        if announce:
            stale = " (the prompts or the model changed)" if gens else ""
            announce(f"building the engine index in {folder}{stale}: {len(prompts)} prompts")
        for gen in gens:  # stale generations nobody here serves from, and that no other process holds
            if gen.resolve() not in _OPEN:
                shutil.rmtree(gen, ignore_errors=True)
        number = int(gens[0].name[4:]) + 1 if gens else 1
        index = EdgeIndex.build(folder / f"gen-{number}", prompts, embeddings, template=template)
        index.source = dict(source)
        index.persist()
        index.max_drift = LIVE_MAX_DRIFT
        _OPEN[(folder / f"gen-{number}").resolve()] = index
        return index


# -- open or build, for a retriever --------------------------------------------------------------------
# Indexes open in this process, by folder: a second retriever of the same prompts shares the open one (a
# local-mode folder admits one client at a time).
_OPEN: weakref.WeakValueDictionary[Path, QdrantIndex] = weakref.WeakValueDictionary()
_OPEN_LOCK = threading.Lock()


def open_qdrant(
    folder: str | Path,
    prompts: Sequence[Prompt],
    embeddings: np.ndarray,
    *,
    location,
    collection: str = "prompts",
    template: str,
    source: dict,
    max_drift: float = 0.0,
    hnsw: HnswParams | None = None,
    api_key: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> QdrantIndex:
    """The Qdrant index whose statistics are in `folder`, when it is on `collection` at `location` and was
    built from `source` (corpus and model fingerprints) with as many prompts; else `collection` is rebuilt
    from `prompts` and their `embeddings` (no re-encoding), replacing it in place (unlike `open_edge`'s
    generations: a process still serving from the old collection sees it change). A folder holding
    anything but `qdrant.json` and `bm25.json` is refused, never touched."""
    folder = Path(folder)
    with _OPEN_LOCK:
        if folder.exists() and any(p.name not in (META, STATS) for p in folder.iterdir()):
            raise InputError(f"{folder} exists and is not a Qdrant engine index: move it away")
        key = folder.resolve()
        index = _OPEN.get(key)
        where = location if isinstance(location, str | Path) else location_of(location)
        if index is None and (folder / META).exists():
            try:
                index = QdrantIndex.open(folder, location=location, api_key=api_key)
            except InputError:
                index = None
        if (
            index is not None
            and index.collection == collection
            and (where is None or str(where) == index.url)
            and index.source == source
            and len(index) == len(prompts)
        ):
            index.max_drift = max_drift
            _OPEN[key] = index
            return index
        if index is not None:
            index.close()
            _OPEN.pop(key, None)
        if announce:
            announce(f"building the Qdrant index {collection!r} at {where}: {len(prompts)} prompts")
        index = QdrantIndex.build(
            folder,
            prompts,
            embeddings,
            location=location,
            collection=collection,
            hnsw=hnsw,
            template=template,
            replace=True,
            api_key=api_key,
        )
        index.source = dict(source)
        index.persist()
        index.max_drift = max_drift
        _OPEN[key] = index
        return index
