"""Building the systems an evaluation compares, and choosing the hybrids' fusion weights on dev.

The systems themselves (dense, BM25 and the hybrids `hybrid`, `hybrid-adaptive`, `hybrid-rrf`) live in
`search.systems`, where serving uses them too; this module builds them from specs (`build_systems`, BM25
and each model's embeddings once) and tunes the hybrids' fusion weights on the dev split only
(`tune_alpha`, `tune_adaptive`, `tune_jointly`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..corpus import Prompt
from ..encoding.encoder import DEFAULT_TEMPLATE
from ..encoding.models import DEFAULT_MODEL
from ..search.candidates import DEFAULT_DEPTH, ExactFusion
from ..search.runs import Run
from ..search.systems import (
    AdaptiveFusionSystem,
    BM25System,
    DenseSystem,
    Retriever,
    RRFSystem,
    System,
    WeightedFusionSystem,
)

__all__ = [
    "AdaptiveFusionSystem",
    "BM25System",
    "DenseSystem",
    "RRFSystem",
    "Retriever",
    "Run",
    "System",
    "WeightedFusionSystem",
    "build_systems",
    "tune_adaptive",
    "tune_alpha",
    "tune_jointly",
]


ALPHA_GRID = tuple(round(i / 10, 1) for i in range(11))  # the fusion weights tried on dev: 0.0, 0.1, ..., 1.0


def alpha_grid_scores(
    dense_system,
    bm25_system,
    dev_queries: Sequence[tuple[str, str]],
    dev_qrels: dict[str, dict[str, int]],
    metric: str,
    grid: Sequence[float],
    depth: int = DEFAULT_DEPTH,
    *,
    adaptive: bool = False,
    fusion: str = "corpus",
) -> dict[float, dict[str, float]]:
    """`metric` of every dev query under each weight of `grid`: alpha * dense + (1 - alpha) * BM25 fused
    as the system searches (`search.candidates.ExactFusion`: each side's top `depth`, the whole corpus's
    normalisation, the same run as full-corpus fusion; `fusion` "candidates": the union's best, as
    `systems.fused_run` fuses it). `adaptive`: weighted in float32, as the query-adaptive hybrid weighs
    every query (`candidates.query_alphas`)."""
    import numpy as np

    from .metrics import per_query

    texts = [t for _, t in dev_queries]
    qids = [q for q, _ in dev_queries]
    k = int(metric.split("@")[1]) if "@" in metric else 100
    dense, bm25 = dense_system.scores(texts), bm25_system.scores(texts)
    weight = np.float32 if adaptive else float
    fused = ExactFusion(qids, dense_system.ids, dense, bm25, depth)

    def run(alpha) -> dict:
        return fused.union_best(alpha, k) if fusion == "candidates" else fused.fuse(alpha, k)[0]

    return {a: per_query(run(weight(a)), dev_qrels, [metric])[metric] for a in grid}


# A dev set to tune a fusion weight on: a fusion system (its dense and BM25 sides over one collection), the
# dev queries (id, text) and their qrels. Several sets tune one weight jointly, e.g. a collection's own
# template dev queries and a reference collection's natural-language ones (see golden/reference.py).
DevSet = tuple[object, Sequence[tuple[str, str]], dict[str, dict[str, int]]]


def joint_grid_scores(
    sets: Sequence[DevSet], metric: str, grid: Sequence[float]
) -> tuple[dict[float, dict[str, float]], list[str], list[str]]:
    """`metric` of every query of every set under each weight of `grid`, with the query ids (made unique
    across sets as `SET:ID`) and texts in order."""
    per_alpha: dict[float, dict[str, float]] = {a: {} for a in grid}
    ids: list[str] = []
    texts: list[str] = []
    for i, (system, queries, qrels) in enumerate(sets):
        if not queries:
            continue
        adaptive = isinstance(system, AdaptiveFusionSystem)
        args = (system.dense, system.bm25, queries, qrels, metric, grid, system.depth)
        scores = alpha_grid_scores(*args, adaptive=adaptive, fusion=system.fusion)
        for a in grid:
            per_alpha[a].update({f"{i}:{q}": v for q, v in scores[a].items()})
        ids += [f"{i}:{q}" for q, _ in queries]
        texts += [t for _, t in queries]
    return per_alpha, ids, texts


def tune_alpha(
    system: WeightedFusionSystem,
    dev_queries: Sequence[tuple[str, str]],
    dev_qrels: dict[str, dict[str, int]],
    metric: str = "ndcg@10",
    grid: Sequence[float] = ALPHA_GRID,
    *,
    also: Sequence[DevSet] = (),
) -> tuple[float, dict[float, float]]:
    """Pick alpha on the dev split only; returns (best alpha, metric per alpha). Ties go to the smaller.
    `also`: more dev sets (other collections' fusion systems of the same kind) tuned jointly, every query
    weighing the same.

    Sets the system's alpha and records the tuning in its `report_extra`."""
    from .metrics import mean

    per_alpha, _, _ = joint_grid_scores([(system, dev_queries, dev_qrels), *also], metric, grid)
    results = {a: mean(scores) for a, scores in per_alpha.items()}
    best = max(results, key=lambda a: (results[a], -a))
    system.alpha = best
    system.tuning = {"tuned_on": "dev", f"dev_{metric}_by_alpha": results, "dev_sets": 1 + len(also)}
    return best, results


def tune_adaptive(
    system: AdaptiveFusionSystem,
    dev_queries: Sequence[tuple[str, str]],
    dev_qrels: dict[str, dict[str, int]],
    metric: str = "ndcg@10",
    grid: Sequence[float] = ALPHA_GRID,
    min_queries: int = 20,
    *,
    also: Sequence[DevSet] = (),
) -> tuple[float, ...]:
    """Pick one alpha per query-length bucket on the dev split only (ties go to the smaller); `also` as in
    `tune_alpha`. A bucket with fewer than `min_queries` dev queries gets no fusion weight that queries of
    other lengths decided: it is served by the dense side alone (alpha 1.0), which is what the bucket's
    queries get from a plain embedding search."""
    from ..search.systems import length_buckets

    per_alpha, qids, texts = joint_grid_scores([(system, dev_queries, dev_qrels), *also], metric, grid)
    buckets = length_buckets(texts, system.bounds)

    def best(ids: list[str]) -> float:
        return max(grid, key=lambda a: (sum(per_alpha[a][q] for q in ids) / len(ids), -a))

    alphas, table = [], {}
    for b in range(len(system.bounds) + 1):
        ids = [q for q, x in zip(qids, buckets, strict=True) if x == b]
        enough = len(ids) >= min_queries
        alphas.append(best(ids) if enough else 1.0)
        table[str(b)] = {"queries": len(ids), "alpha": alphas[-1]} | ({} if enough else {"fallback": "dense only"})
    system.alphas = tuple(alphas)
    system.tuning = {"tuned_on": "dev", "buckets": table, "min_queries": min_queries, "dev_sets": 1 + len(also)}
    return system.alphas


DevPairs = tuple[Sequence[tuple[str, str]], dict[str, dict[str, int]]]  # dev (query id, text) pairs and qrels


def tune_jointly(pairs: Sequence[tuple[System, System]], own: DevPairs | None, twins: DevPairs) -> None:
    """Tune each fusion system of `pairs` (a system and its twin: the same kind over another collection)
    on its own dev queries `own` and the twin's dev queries `twins` jointly, every query weighing the same,
    and give the twin the same weights. Other kinds are left as they are."""
    own_q, own_r = own if own else ([], {})
    for system, twin in pairs:
        if isinstance(system, AdaptiveFusionSystem) and isinstance(twin, AdaptiveFusionSystem):
            tune_adaptive(system, own_q, own_r, also=[(twin, *twins)])
            twin.alphas, twin.tuning = system.alphas, system.tuning
        elif isinstance(system, WeightedFusionSystem) and isinstance(twin, WeightedFusionSystem):
            tune_alpha(system, own_q, own_r, also=[(twin, *twins)])
            twin.alpha, twin.tuning = system.alpha, system.tuning


def build_systems(
    specs: Sequence[str],
    prompts: Sequence[Prompt],
    *,
    dev: tuple[Sequence[tuple[str, str]], dict[str, dict[str, int]]] | None = None,
    template: str = DEFAULT_TEMPLATE,
    default_model: str = DEFAULT_MODEL,
    show_progress: bool = False,
    names: Mapping[str, str] | None = None,
    depth: int = DEFAULT_DEPTH,
    fusion: str = "corpus",
) -> list[System]:
    """Systems from specs: `bm25`, a model name or folder (dense), `hybrid[:MODEL]` (weighted fusion,
    alpha tuned on `dev` queries/qrels when given, else 0.5), `hybrid-adaptive[:MODEL]` (weighted fusion
    with one alpha per query-length bucket, tuned on `dev` likewise), `hybrid-rrf[:MODEL]` (rank fusion).

    BM25 and each model's corpus embedding are built once, however many specs use them. `names` maps a
    spec to its system's name (default: the spec); a model's name applies to its dense system wherever
    that is used. `depth`: each side's candidates in the hybrids' fusion (`search.candidates`); `fusion`:
    what the weighted hybrids fuse (`search.spec.FUSIONS`: the whole corpus, or only those candidates)."""
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
            system = WeightedFusionSystem(
                get_dense(model or default_model), get_bm25(), name=names.get(spec, spec), depth=depth, fusion=fusion
            )
            if dev is not None and dev[0]:
                tune_alpha(system, dev[0], dev[1])
            out.append(system)
        elif kind == "hybrid-adaptive":
            system = AdaptiveFusionSystem(
                get_dense(model or default_model), get_bm25(), name=names.get(spec, spec), depth=depth, fusion=fusion
            )
            if dev is not None and dev[0]:
                tune_adaptive(system, dev[0], dev[1])
            out.append(system)
        elif kind == "hybrid-rrf":
            pair = [get_dense(model or default_model), get_bm25()]
            out.append(RRFSystem(pair, name=names.get(spec, spec), depth=depth))
        else:
            out.append(get_dense(spec))
    return out
