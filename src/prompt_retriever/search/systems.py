"""Retrieval systems behind one protocol: `search(queries, k, mask=None) -> run` over the whole corpus.

- `DenseSystem`: any model the registry resolves (bundled, fine-tuned folder, local folder), exact
  cosine search, queries encoded in batches, corpus embeddings cached by model fingerprint.
- `BM25System`: Lucene BM25 (k1=1.5, b=0.75; bm25s's scores, bit for bit, from `BM25Index`, which
  takes prompts in and out without re-indexing) over the same document text as the dense system;
  tokenizer: lower-case word tokens, English stop words removed, Snowball English stemmer (PyStemmer),
  so "lighthouses" matches "lighthouse". Prompts with score 0 are not retrieved.
- `RRFSystem`: reciprocal rank fusion of several systems, score = sum 1 / (60 + rank).
- `WeightedFusionSystem`: alpha * dense + (1 - alpha) * bm25, each side min-max normalised over the whole
  corpus (an engine gets the same result from the union of each side's top `depth` candidates:
  `candidates`, `engine`); alpha is chosen on the dev split only (`evaluation.tune_alpha`).
- `AdaptiveFusionSystem`: the weighted hybrid with one alpha per query-length bucket, each chosen on dev.

`SystemSpec` names the kind a `PromptRetriever` serves (`KINDS`), `system_label` a human name for it.

`mask` (from `runs.filter_mask`) restricts a search to the prompts a genre/theme filter allows: dense and
BM25 rank exactly as unfiltered among them; the hybrids take their candidates among them (the weighted
ones still normalise over the whole corpus). The arithmetic of each kind is one function (`dense_run`,
`bm25_run`, `weighted_run`, `adaptive_run`, `rrf_run`, all behind `system_run`; the weighted hybrids
fuse the whole corpus, which candidate fusion over an engine, `engine.EngineSearch`, proves equal to),
called by these classes during evaluation and by
`PromptRetriever` when it serves a system: the run a metric scores and the hits a server returns come from
the same code.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..corpus import Prompt
from ..encoding.encoder import DEFAULT_TEMPLATE, Encoder, prompt_document
from ..errors import InputError
from .bm25_index import BM25Index
from .bm25_terms import tokenize
from .candidates import ADAPTIVE_BOUNDS, DEFAULT_DEPTH, ExactFusion, candidate_lists, fused_row, query_alphas
from .candidates import length_buckets as length_buckets  # imported from here by evaluation and tests
from .fusion import rrf
from .runs import Run, run_from_scores

# the spec's names, imported from here across the package and by tests (their home is `spec`)
from .spec import KINDS as KINDS
from .spec import MAX_BOUND as MAX_BOUND
from .spec import MAX_BUCKETS as MAX_BUCKETS
from .spec import MAX_DEPTH as MAX_DEPTH
from .spec import MAX_K_RRF as MAX_K_RRF
from .spec import SystemSpec as SystemSpec
from .spec import system_label as system_label
from .spec import system_problem as system_problem


@runtime_checkable
class Retriever(Protocol):
    name: str

    def search(self, queries: Sequence[tuple[str, str]], k: int) -> Run:
        """queries: (query id, text) pairs. Returns query id -> {prompt id: score}, best k."""
        ...


class System:
    """Base of the systems here: what an evaluation report records about a system besides its run."""

    name: str
    kind: str = "dense"
    fingerprint: str | None = None  # the model's fingerprint, for provenance (dense systems)

    @property
    def report_extra(self) -> dict:
        """Extra facts for the report (e.g. a hybrid's alpha and how it was chosen); none by default."""
        return {}

    def servable(self) -> tuple[SystemSpec, str | None]:
        """The `SystemSpec` a `PromptRetriever` serves this system with, and the model it embeds with
        (None for BM25): what a pipeline writes into a run's `system.json`."""
        raise NotImplementedError(f"{type(self).__name__} cannot be served")


def dense_run(qids, ids, dense: np.ndarray, k: int, mask=None) -> Run:
    return run_from_scores(qids, ids, dense, k, mask=mask)


def bm25_run(qids, ids, bm25: np.ndarray, k: int, mask=None) -> Run:
    return run_from_scores(qids, ids, bm25, k, keep=lambda s: s > 0, mask=mask)


def fused_run(
    kind: str,
    qids: Sequence[str],
    ids: Sequence[str],
    dense: np.ndarray,
    bm25: np.ndarray,
    k: int,
    mask=None,
    *,
    depth: int = DEFAULT_DEPTH,
    alpha: float = 0.5,
    texts: Sequence[str] = (),
    alphas: Sequence[float] = (),
    bounds: Sequence[int] = ADAPTIVE_BOUNDS,
    fusion: str = "corpus",
) -> tuple[Run, list[str]]:
    """A weighted hybrid's run (`hybrid`, `hybrid-adaptive`) fused over each side's top `depth` among the
    prompts `mask` allows (`candidates.ExactFusion`): always the full-corpus fusion's run. Also returns the
    queries whose candidates could not prove it and were fused over the whole corpus. `fusion`
    "candidates": the union's best `k` of every query, proven or not (`ExactFusion.union_best`), none
    fused over the whole corpus."""
    weights = query_alphas(kind, qids, alpha, texts=texts, alphas=alphas, bounds=bounds)
    if fusion == "candidates":
        return ExactFusion(qids, ids, dense, bm25, depth, mask).union_best(weights, k), []
    return ExactFusion(qids, ids, dense, bm25, depth, mask).fuse(weights, k)


def full_fusion_run(
    kind: str,
    qids: Sequence[str],
    ids: Sequence[str],
    dense: np.ndarray,
    bm25: np.ndarray,
    k: int,
    mask=None,
    *,
    alpha: float = 0.5,
    texts: Sequence[str] = (),
    alphas: Sequence[float] = (),
    bounds: Sequence[int] = ADAPTIVE_BOUNDS,
    depth: int = DEFAULT_DEPTH,
    fusion: str = "corpus",
) -> Run:
    """A weighted hybrid's run from full score matrices, fused over the whole corpus (`candidates.fused_row`,
    as `ExactFusion.full` fuses). Candidate fusion (`fused_run`, an engine's `EngineSearch`) is proven
    equal to it; with the full matrices already computed, fusing every prompt is the cheaper way there.
    `fusion` "candidates": each query's union of each side's top `depth` instead (`fused_run`), the system
    an engine answers in one round."""
    if fusion == "candidates":
        return fused_run(
            kind,
            qids,
            ids,
            dense,
            bm25,
            k,
            mask,
            depth=depth,
            alpha=alpha,
            texts=texts,
            alphas=alphas,
            bounds=bounds,
            fusion=fusion,
        )[0]
    weights = query_alphas(kind, qids, alpha, texts=texts, alphas=alphas, bounds=bounds)
    return {
        q: run_from_scores([q], ids, fused_row(weights[q], dense[i], bm25[i])[None, :], k, mask=mask)[q]
        for i, q in enumerate(qids)
    }


def weighted_run(
    qids,
    ids,
    dense: np.ndarray,
    bm25: np.ndarray,
    alpha: float,
    k: int,
    mask=None,
    *,
    depth: int = DEFAULT_DEPTH,
    fusion: str = "corpus",
) -> Run:
    """alpha * dense + (1 - alpha) * bm25, each min-max normalised over the whole corpus, then restricted
    by `mask` (`full_fusion_run`; `depth` is what candidate fusion takes from each side)."""
    return full_fusion_run("hybrid", qids, ids, dense, bm25, k, mask, alpha=alpha, depth=depth, fusion=fusion)


def adaptive_run(
    qids,
    ids,
    texts,
    dense,
    bm25,
    alphas: Sequence[float],
    bounds: Sequence[int],
    k: int,
    mask=None,
    *,
    depth: int = DEFAULT_DEPTH,
    fusion: str = "corpus",
) -> Run:
    """The query-adaptive hybrid: each query's alpha comes from its length bucket (short keyword queries
    lean on BM25, long descriptive ones on the dense model); fused as `weighted_run`."""
    return full_fusion_run(
        "hybrid-adaptive",
        qids,
        ids,
        dense,
        bm25,
        k,
        mask,
        texts=texts,
        alphas=alphas,
        bounds=bounds,
        depth=depth,
        fusion=fusion,
    )


def rrf_run(
    qids, ids, dense: np.ndarray, bm25: np.ndarray, k: int, *, k_rrf: int = 60, depth: int = DEFAULT_DEPTH, mask=None
) -> Run:
    """Reciprocal rank fusion of each side's top `depth` among the prompts `mask` allows."""
    return rrf(list(candidate_lists(qids, ids, dense, bm25, depth, mask)), k_rrf, top=k, qids=qids)


def system_run(
    kind: str,
    qids: Sequence[str],
    ids: Sequence[str],
    dense: np.ndarray | None,
    bm25: np.ndarray | None,
    k: int,
    *,
    alpha: float = 0.5,
    k_rrf: int = 60,
    depth: int = DEFAULT_DEPTH,
    mask=None,
    texts: Sequence[str] = (),
    alphas: Sequence[float] = (),
    bounds: Sequence[int] = ADAPTIVE_BOUNDS,
    fusion: str = "corpus",
) -> Run:
    """The run of a system of `kind` from its component score matrices (queries x prompts); the hybrids
    fuse each side's top `depth` (`candidates`; the weighted ones as `fusion` says, `spec.FUSIONS`), the
    adaptive hybrid also reads the query `texts`."""
    if kind == "dense":
        return dense_run(qids, ids, dense, k, mask)
    if kind == "bm25":
        return bm25_run(qids, ids, bm25, k, mask)
    if kind == "hybrid":
        return weighted_run(qids, ids, dense, bm25, alpha, k, mask, depth=depth, fusion=fusion)
    if kind == "hybrid-rrf":
        return rrf_run(qids, ids, dense, bm25, k, k_rrf=k_rrf, depth=depth, mask=mask)
    if kind == "hybrid-adaptive":
        return adaptive_run(qids, ids, texts, dense, bm25, alphas, bounds, k, mask, depth=depth, fusion=fusion)
    raise InputError(f"unknown system kind {kind!r}: use {', '.join(KINDS)}")


class DenseSystem(System):
    kind = "dense"

    def __init__(
        self,
        model: str,
        prompts: Sequence[Prompt],
        *,
        template: str = DEFAULT_TEMPLATE,
        name: str | None = None,
        batch_size: int = 64,
        show_progress: bool = False,
    ):
        self.encoder = Encoder(model, batch_size=batch_size, show_progress=show_progress)
        self.model = model
        self.template = template
        self.name = name or model
        self.ids = [p.id for p in prompts]
        self.matrix = self.encoder.encode_documents([prompt_document(p, template) for p in prompts])

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    def servable(self) -> tuple[SystemSpec, str | None]:
        return SystemSpec("dense"), self.model

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_queries(list(texts)) @ self.matrix.T

    def search(self, queries: Sequence[tuple[str, str]], k: int, mask=None) -> Run:
        qids = [q for q, _ in queries]
        return dense_run(qids, self.ids, self.scores([t for _, t in queries]), k, mask)


class BM25System(System):
    """Lucene BM25 over the prompts' documents (`BM25Index`: bm25s's scores, changes without re-indexing)."""

    kind = "bm25"

    def __init__(self, prompts: Sequence[Prompt], *, template: str = DEFAULT_TEMPLATE, name: str = "bm25"):
        self.name = name
        self.template = template
        self.ids: list[str] = []
        self.index = BM25Index()
        self.add(prompts)

    def servable(self) -> tuple[SystemSpec, str | None]:
        return SystemSpec("bm25"), None

    def add(self, prompts: Sequence[Prompt]) -> None:
        """Append prompts (a live update: nothing already indexed is tokenized again)."""
        self.index.add(tokenize([prompt_document(p, self.template) for p in prompts]))
        self.ids.extend(p.id for p in prompts)

    def remove(self, positions: Iterable[int]) -> None:
        """Take out the prompts at `positions` (of `ids`); the others keep their order."""
        gone = set(positions)  # any iterable, read once
        self.index.remove(gone)
        self.ids = [pid for i, pid in enumerate(self.ids) if i not in gone]

    def copy(self) -> BM25System:
        """An independent copy: changing one leaves the other as it was."""
        new = copy.copy(self)
        new.ids, new.index = list(self.ids), self.index.copy()
        return new

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return self.index.scores(tokenize(list(texts)))

    def search(self, queries: Sequence[tuple[str, str]], k: int, mask=None) -> Run:
        qids = [q for q, _ in queries]
        return bm25_run(qids, self.ids, self.scores([t for _, t in queries]), k, mask)


class RRFSystem(System):
    kind = "hybrid-rrf"

    def __init__(
        self, systems: Sequence[Retriever], *, k_rrf: int = 60, depth: int = DEFAULT_DEPTH, name: str = "hybrid-rrf"
    ):
        self.systems = list(systems)
        self.k_rrf = k_rrf
        self.depth = depth
        self.name = name

    @property
    def report_extra(self) -> dict:
        return {"k_rrf": self.k_rrf, "depth": self.depth}

    def servable(self) -> tuple[SystemSpec, str | None]:
        dense = next(s for s in self.systems if s.kind == "dense")
        return SystemSpec("hybrid-rrf", k_rrf=self.k_rrf, depth=self.depth), dense.model

    def search(self, queries: Sequence[tuple[str, str]], k: int, mask=None) -> Run:
        runs = [s.search(queries, self.depth, *([] if mask is None else [mask])) for s in self.systems]
        return rrf(runs, self.k_rrf, top=k, qids=[q for q, _ in queries])


class WeightedFusionSystem(System):
    """alpha * normalised dense + (1 - alpha) * normalised BM25, fused over each side's top `depth`."""

    kind = "hybrid"

    def __init__(
        self,
        dense: DenseSystem,
        bm25: BM25System,
        alpha: float = 0.5,
        name: str | None = None,
        *,
        depth: int = DEFAULT_DEPTH,
        fusion: str = "corpus",
    ):
        if not 0.0 <= alpha <= 1.0:
            raise InputError("alpha must be in [0, 1]")
        if depth < 1:
            raise InputError("depth must be at least 1")
        SystemSpec("hybrid", fusion=fusion)  # an unknown fusion: the spec's InputError, here
        self.dense, self.bm25, self.alpha, self.depth, self.fusion = dense, bm25, alpha, depth, fusion
        self.name = name or "hybrid-weighted"
        self.tuning: dict | None = None  # set by `tune_alpha`: the split and the metric per alpha

    @property
    def report_extra(self) -> dict:
        return {
            "alpha": self.alpha,
            "depth": self.depth,
            **({"fusion": self.fusion} if self.fusion != "corpus" else {}),
            **(self.tuning or {"tuned_on": "none (no dev split)"}),
        }

    def servable(self) -> tuple[SystemSpec, str | None]:
        return SystemSpec("hybrid", alpha=self.alpha, depth=self.depth, fusion=self.fusion), self.dense.model

    def search(self, queries: Sequence[tuple[str, str]], k: int, mask=None) -> Run:
        qids = [q for q, _ in queries]
        texts = [t for _, t in queries]
        dense, bm25 = self.dense.scores(texts), self.bm25.scores(texts)
        return weighted_run(
            qids, self.dense.ids, dense, bm25, self.alpha, k, mask, depth=self.depth, fusion=self.fusion
        )


class AdaptiveFusionSystem(System):
    """The weighted hybrid with one alpha per query-length bucket, each chosen on dev (`tune_adaptive`)."""

    kind = "hybrid-adaptive"

    def __init__(
        self,
        dense: DenseSystem,
        bm25: BM25System,
        alphas: Sequence[float] | None = None,
        bounds: Sequence[int] = ADAPTIVE_BOUNDS,
        name: str | None = None,
        *,
        depth: int = DEFAULT_DEPTH,
        fusion: str = "corpus",
    ):
        if depth < 1:
            raise InputError("depth must be at least 1")
        SystemSpec("hybrid-adaptive", fusion=fusion)  # an unknown fusion: the spec's InputError, here
        self.dense, self.bm25, self.bounds, self.depth = dense, bm25, tuple(bounds), depth
        self.fusion = fusion
        self.alphas = tuple(alphas) if alphas is not None else (0.5,) * (len(self.bounds) + 1)
        if len(self.alphas) != len(self.bounds) + 1 or not all(0.0 <= a <= 1.0 for a in self.alphas):
            raise InputError("one alpha in [0, 1] per length bucket")
        self.name = name or "hybrid-adaptive"
        self.tuning: dict | None = None

    @property
    def report_extra(self) -> dict:
        extra = {"alphas": list(self.alphas), "bounds": list(self.bounds), "depth": self.depth}
        extra |= {"fusion": self.fusion} if self.fusion != "corpus" else {}
        return extra | (self.tuning or {"tuned_on": "none"})

    def servable(self) -> tuple[SystemSpec, str | None]:
        spec = SystemSpec(
            "hybrid-adaptive", alphas=self.alphas, bounds=self.bounds, depth=self.depth, fusion=self.fusion
        )
        return spec, self.dense.model

    def search(self, queries: Sequence[tuple[str, str]], k: int, mask=None) -> Run:
        qids = [q for q, _ in queries]
        texts = [t for _, t in queries]
        dense, bm25 = self.dense.scores(texts), self.bm25.scores(texts)
        args = (qids, self.dense.ids, texts, dense, bm25, self.alphas, self.bounds, k, mask)
        return adaptive_run(*args, depth=self.depth, fusion=self.fusion)
