"""Retrieval systems behind one protocol: `search(queries, k) -> run` over the whole corpus.

- `DenseSystem`: any model the registry resolves (bundled, fine-tuned folder, local folder), exact
  cosine search, queries encoded in batches, corpus embeddings cached by model fingerprint.
- `BM25System`: `bm25s` (Lucene BM25, k1=1.5, b=0.75) over the same document text as the dense
  system; tokenizer: lower-case word tokens, English stop words removed, Snowball English stemmer
  (PyStemmer), so "lighthouses" matches "lighthouse". Prompts with score 0 are not retrieved.
- `RRFSystem`: reciprocal rank fusion of several systems, score = sum 1 / (60 + rank).
- `WeightedFusionSystem`: alpha * dense + (1 - alpha) * bm25 over min-max normalised scores of each
  system's top candidates; alpha is chosen on the dev split only (`tune_alpha`).

The fusion arithmetic itself is in `fusion` (pure functions). Every system here derives from `System`,
which declares what a report records about it besides its run: `fingerprint` and `report_extra`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..corpus import Prompt
from ..encoding.encoder import DEFAULT_TEMPLATE, Encoder, prompt_document
from ..encoding.models import DEFAULT_MODEL
from ..errors import InputError
from ..search.stores import top_k_indices
from .fusion import normalize, rrf, weighted_sum

Run = dict[str, dict[str, float]]


@runtime_checkable
class Retriever(Protocol):
    name: str

    def search(self, queries: Sequence[tuple[str, str]], k: int) -> Run:
        """queries: (query id, text) pairs. Returns query id -> {prompt id: score}, best k."""
        ...


class System:
    """Base of the systems here: what an evaluation report records about a system besides its run."""

    name: str
    fingerprint: str | None = None  # the model's fingerprint, for provenance (dense systems)

    @property
    def report_extra(self) -> dict:
        """Extra facts for the report (e.g. a hybrid's alpha and how it was chosen); none by default."""
        return {}


def _run_from_scores(qids: Sequence[str], ids: Sequence[str], scores: np.ndarray, k: int, keep=None) -> Run:
    run: Run = {}
    for qid, row in zip(qids, scores, strict=True):
        top = top_k_indices(row, k)
        run[qid] = {ids[i]: float(row[i]) for i in top if keep is None or keep(row[i])}
    return run


class DenseSystem(System):
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
        self.name = name or model
        self.ids = [p.id for p in prompts]
        self.matrix = self.encoder.encode_documents([prompt_document(p, template) for p in prompts])

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_queries(list(texts)) @ self.matrix.T

    def search(self, queries: Sequence[tuple[str, str]], k: int) -> Run:
        qids = [q for q, _ in queries]
        return _run_from_scores(qids, self.ids, self.scores([t for _, t in queries]), k)


class BM25System(System):
    def __init__(self, prompts: Sequence[Prompt], *, template: str = DEFAULT_TEMPLATE, name: str = "bm25"):
        import bm25s
        import Stemmer

        self._bm25s = bm25s
        self.stemmer = Stemmer.Stemmer("english")
        self.name = name
        self.ids = [p.id for p in prompts]
        tokens = bm25s.tokenize(
            [prompt_document(p, template) for p in prompts],
            stopwords="en",
            stemmer=self.stemmer,
            show_progress=False,
        )
        self.model = bm25s.BM25(k1=1.5, b=0.75)
        self.model.index(tokens, show_progress=False)
        self.vocab = tokens.vocab

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.ids)), dtype=np.float32)
        toks = self._bm25s.tokenize(
            list(texts), stopwords="en", stemmer=self.stemmer, return_ids=False, show_progress=False
        )
        for i, words in enumerate(toks):
            known = [w for w in words if w in self.vocab]
            if known:
                out[i] = self.model.get_scores(known)
        return out

    def search(self, queries: Sequence[tuple[str, str]], k: int) -> Run:
        qids = [q for q, _ in queries]
        return _run_from_scores(qids, self.ids, self.scores([t for _, t in queries]), k, keep=lambda s: s > 0)


class RRFSystem(System):
    def __init__(self, systems: Sequence[Retriever], *, k_rrf: int = 60, depth: int = 100, name: str = "hybrid-rrf"):
        self.systems = list(systems)
        self.k_rrf = k_rrf
        self.depth = depth
        self.name = name

    def search(self, queries: Sequence[tuple[str, str]], k: int) -> Run:
        runs = [s.search(queries, self.depth) for s in self.systems]
        return rrf(runs, self.k_rrf, top=k, qids=[q for q, _ in queries])


class WeightedFusionSystem(System):
    """alpha * normalised dense + (1 - alpha) * normalised BM25, scored over the full corpus."""

    def __init__(self, dense: DenseSystem, bm25: BM25System, alpha: float = 0.5, name: str | None = None):
        if not 0.0 <= alpha <= 1.0:
            raise InputError("alpha must be in [0, 1]")
        self.dense, self.bm25, self.alpha = dense, bm25, alpha
        self.name = name or "hybrid-weighted"
        self.tuning: dict | None = None  # set by `tune_alpha`: the split and the metric per alpha

    @property
    def report_extra(self) -> dict:
        return {"alpha": self.alpha, **(self.tuning or {"tuned_on": "none (no dev split)"})}

    def fused_scores(self, texts: Sequence[str], alpha: float | None = None) -> np.ndarray:
        a = self.alpha if alpha is None else alpha
        return weighted_sum(normalize(self.dense.scores(texts)), normalize(self.bm25.scores(texts)), a)

    def search(self, queries: Sequence[tuple[str, str]], k: int) -> Run:
        qids = [q for q, _ in queries]
        return _run_from_scores(qids, self.dense.ids, self.fused_scores([t for _, t in queries]), k)


def tune_alpha(
    system: WeightedFusionSystem,
    dev_queries: Sequence[tuple[str, str]],
    dev_qrels: dict[str, dict[str, int]],
    metric: str = "ndcg@10",
    grid: Sequence[float] = tuple(round(i / 10, 1) for i in range(11)),
) -> tuple[float, dict[float, float]]:
    """Pick alpha on the dev split only; returns (best alpha, metric per alpha). Ties go to the smaller.

    Sets the system's alpha and records the tuning in its `report_extra`."""
    from .metrics import evaluate

    texts = [t for _, t in dev_queries]
    qids = [q for q, _ in dev_queries]
    dense = normalize(system.dense.scores(texts))
    bm25 = normalize(system.bm25.scores(texts))
    k = int(metric.split("@")[1]) if "@" in metric else 100
    results = {}
    for a in grid:
        run = _run_from_scores(qids, system.dense.ids, weighted_sum(dense, bm25, a), k)
        results[a] = evaluate(run, dev_qrels, [metric])[metric]
    best = max(results, key=lambda a: (results[a], -a))
    system.alpha = best
    system.tuning = {"tuned_on": "dev", f"dev_{metric}_by_alpha": results}
    return best, results


def build_systems(
    specs: Sequence[str],
    prompts: Sequence[Prompt],
    *,
    dev: tuple[Sequence[tuple[str, str]], dict[str, dict[str, int]]] | None = None,
    template: str = DEFAULT_TEMPLATE,
    default_model: str = DEFAULT_MODEL,
    show_progress: bool = False,
    names: Mapping[str, str] | None = None,
) -> list[System]:
    """Systems from specs: `bm25`, a model name or folder (dense), `hybrid[:MODEL]` (weighted fusion,
    alpha tuned on `dev` queries/qrels when given, else 0.5), `hybrid-rrf[:MODEL]` (rank fusion).

    BM25 and each model's corpus embedding are built once, however many specs use them. `names` maps a
    spec to its system's name (default: the spec); a model's name applies to its dense system wherever
    that is used."""
    names = names or {}
    dense_cache: dict[str, DenseSystem] = {}
    bm25: list[BM25System] = []

    def get_dense(model: str) -> DenseSystem:
        if model not in dense_cache:
            dense_cache[model] = DenseSystem(
                model, prompts, template=template, name=names.get(model), show_progress=show_progress
            )
        return dense_cache[model]

    def get_bm25() -> BM25System:
        if not bm25:
            bm25.append(BM25System(prompts, template=template))
        return bm25[0]

    out: list[System] = []
    for spec in specs:
        kind, _, model = spec.partition(":")
        if spec == "bm25":
            out.append(get_bm25())
        elif kind == "hybrid":
            system = WeightedFusionSystem(get_dense(model or default_model), get_bm25(), name=names.get(spec, spec))
            if dev is not None and dev[0]:
                tune_alpha(system, dev[0], dev[1])
            out.append(system)
        elif kind == "hybrid-rrf":
            out.append(RRFSystem([get_dense(model or default_model), get_bm25()], name=names.get(spec, spec)))
        else:
            out.append(get_dense(spec))
    return out
