"""Fusion over candidates (`search.candidates`): the weighted hybrids fuse each side's top `depth` with the
whole corpus's normalisation and get exactly the full-corpus fusion (a query the bound cannot settle is
fused over the whole corpus), the same in evaluation, tuning and serving."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from prompt_retriever.corpus import load_corpus
from prompt_retriever.errors import InputError
from prompt_retriever.evaluation.systems import (
    AdaptiveFusionSystem,
    BM25System,
    DenseSystem,
    RRFSystem,
    WeightedFusionSystem,
    alpha_grid_scores,
    build_systems,
    tune_alpha,
)
from prompt_retriever.search import PromptRetriever, SearchRequest
from prompt_retriever.search.candidates import (
    DEFAULT_DEPTH,
    Bounds,
    ExactFusion,
    candidate_lists,
    candidates_from_lists,
    fuse_candidates,
    query_alphas,
)
from prompt_retriever.search.fusion import normalize, rrf, weighted_sum
from prompt_retriever.search.runs import filter_mask, rank, run_from_scores
from prompt_retriever.search.systems import SystemSpec, fused_run, length_buckets, system_run

QUERIES = [
    ("q1", "lighthouse"),
    ("q2", "a robot mechanic repairing a space station"),
    ("q3", "sleeper train argument"),
    ("q4", "zzzz qqqq"),  # no BM25 match at all
    ("q5", "haunted house ghost"),
    ("q6", "dragon"),
    ("q7", "a detective who cannot remember the night of the murder"),
    ("q8", "grief memory family"),
]
QIDS, TEXTS = [q for q, _ in QUERIES], [t for _, t in QUERIES]
ALPHAS = (0.0, 0.4, 0.7, 1.0)  # the adaptive hybrid's, one per length bucket
FILTERS = [(None, None), ("Fantasy", None), (None, "Memory"), ("Science Fiction", "Grief")]


@pytest.fixture(scope="module")
def prompts():
    return load_corpus()[:120]  # the bundled corpus's first prompts: several genres and themes


@pytest.fixture(scope="module")
def sides(prompts):
    return DenseSystem("all-MiniLM-L6-v2", prompts), BM25System(prompts)


@pytest.fixture(scope="module")
def matrices(sides):
    dense, bm25 = sides
    return dense.scores(TEXTS), bm25.scores(TEXTS)


def mask_of(prompts, genre, theme):
    return filter_mask([p.genre for p in prompts], [p.theme for p in prompts], genre, theme)


def reference(kind, ids, dense, bm25, k, mask, alpha=0.5):
    """The full-corpus fusion as it always was: every prompt min-max normalised, weighted, then masked."""
    if kind == "hybrid":
        fused = weighted_sum(normalize(dense), normalize(bm25), alpha)
    else:
        a = np.asarray(ALPHAS, dtype=np.float32)[length_buckets(TEXTS)][:, None]
        fused = a * normalize(dense) + (1 - a) * normalize(bm25)
    return run_from_scores(QIDS, ids, fused, k, mask=mask)


def identical(got: dict, want: dict) -> None:
    """The same queries, the same prompts in the same order, the same scores to the bit."""
    assert list(got) == list(want)
    for q in want:
        assert list(got[q].items()) == list(want[q].items()), q
        assert rank(got[q]) == rank(want[q]), q


def test_the_bound_decides_and_the_fallback_is_the_full_fusion():
    d = np.array([[0.9, 0.7, 0.5, 0.1]], dtype=np.float32)
    b = np.array([[0.0, 7.0, 0.0, 3.0]], dtype=np.float32)
    fusion = ExactFusion(["q"], list("abcd"), d, b, depth=2)
    c = fusion.candidates["q"]
    assert c.ids == ["a", "b", "d"] and c.dense_bounds == Bounds(pytest.approx(0.1), pytest.approx(0.9))
    # outside the union (c): dense <= 0.7 (dense's 2nd), BM25 <= 3 (BM25's 2nd) -> 0.5 * 0.75 + 0.5 * 3/7
    assert c.threshold(0.5) == pytest.approx(0.5 * 0.75 + 0.5 * 3 / 7)
    assert c.fuse(0.5, 1) == {"b": 0.875}  # above the bound
    assert c.fuse(0.5, 2) is None  # a scores 0.5: c could (and here does not) beat it
    run, fallen = fusion.fuse(0.5, 2)
    assert fallen == ["q"] and run == {"q": {"b": 0.875, "a": 0.5}}
    # BM25 ran out of matches (fewer than depth): a prompt outside scores 0 on BM25, so the bound is lower
    assert ExactFusion(["q"], list("abcd"), d, b, depth=3).candidates["q"].bm25_floor == 0.0
    # the dense list holds every prompt the filter allows: the union is everything, no bound needed
    mask = np.array([True, True, False, False])
    assert ExactFusion(["q"], list("abcd"), d, b, depth=2, mask=mask).candidates["q"].threshold(0.5) is None
    assert ExactFusion(["q"], [], d[:, :0], b[:, :0], depth=2).fuse(0.5, 3) == ({"q": {}}, [])
    # a tie at the cut: the lower corpus position makes it, as the full-corpus path (`top_k_indices`) cuts
    tied = ExactFusion(["q"], list("abc"), np.array([[0.1, 0.5, 0.5]], dtype=np.float32), b[:, :3], depth=3)
    assert tied.candidates["q"].fuse(1.0, 1) == {"b": 1.0} and tied.candidates["q"].fuse(1.0, 2) == {"b": 1.0, "c": 1.0}
    assert tied.fuse(1.0, 1) == (run_from_scores(["q"], list("abc"), normalize(tied.dense), 1), [])
    assert run_from_scores(["q"], list("abc"), np.array([[0.5, 0.1, 0.5]], dtype=np.float32), 1) == {"q": {"a": 0.5}}


@pytest.mark.parametrize("kind", ["hybrid", "hybrid-adaptive"])
@pytest.mark.parametrize("depth", [3, 5])
def test_candidate_fusion_at_a_small_depth_is_the_full_corpus_fusion(prompts, matrices, kind, depth):
    dense, bm25 = matrices
    ids = [p.id for p in prompts]
    exact = 0
    for genre, theme in FILTERS:
        mask = mask_of(prompts, genre, theme)
        for alpha in (0.0, 0.3, 0.6, 1.0):
            for k in (1, 3, 10):
                args = dict(depth=depth, alpha=alpha, texts=TEXTS, alphas=ALPHAS)
                got, fallen = fused_run(kind, QIDS, ids, dense, bm25, k, mask, **args)
                identical(got, reference(kind, ids, dense, bm25, k, mask, alpha))
                identical(system_run(kind, QIDS, ids, dense, bm25, k, mask=mask, **args), got)
                exact += len(QIDS) - len(fallen)
    assert exact > 0  # the candidates alone settled queries, not only the fallback


def test_every_candidate_carries_its_full_corpus_fused_score(prompts, matrices):
    dense, bm25 = matrices
    ids = [p.id for p in prompts]
    mask = mask_of(prompts, "Fantasy", None)
    fusion = ExactFusion(QIDS, ids, dense, bm25, 4, mask)
    for alpha in (0.2, np.float32(0.7)):
        full = alpha * normalize(dense) + (1 - alpha) * normalize(bm25)
        for i, q in enumerate(QIDS):
            c = fusion.candidates[q]
            assert np.array_equal(c.fused(alpha), full[i, c.order])  # bit for bit
            assert {ids[j] for j in c.order} <= {ids[j] for j in np.flatnonzero(mask)}
            outside = np.setdiff1d(np.flatnonzero(mask), c.order)
            if c.threshold(alpha) is not None and len(outside):
                assert full[i, outside].max() <= c.threshold(alpha)  # nothing outside beats the bound


def test_an_engines_lists_give_the_same_candidates(prompts, matrices):
    """What an engine hands over (two top-depth lists, both scores of each member, the corpus bounds)
    fuses to the same run as the full matrices."""
    dense, bm25 = matrices
    ids = [p.id for p in prompts]
    depth, mask = 4, mask_of(prompts, None, "Memory")
    d_lists, b_lists = candidate_lists(QIDS, ids, dense, bm25, depth, mask)
    order = {p: i for i, p in enumerate(ids)}
    engine = {}
    for i, q in enumerate(QIDS):
        dense_of = dict(zip(ids, dense[i].tolist(), strict=True))
        bm25_of = dict(zip(ids, bm25[i].tolist(), strict=True))
        bounds = Bounds(float(dense[i].min()), float(dense[i].max())), Bounds(0.0, float(bm25[i].max()))
        engine[q] = candidates_from_lists(d_lists[q], b_lists[q], dense_of, bm25_of, order, bounds, depth)
    want = ExactFusion(QIDS, ids, dense, bm25, depth, mask)
    weights = query_alphas("hybrid-adaptive", QIDS, texts=TEXTS, alphas=ALPHAS)
    for k in (1, 3, 10):
        got, fallen = fuse_candidates(engine, weights, k)
        exact, exact_fallen = want.fuse(weights, k)
        assert fallen == exact_fallen
        identical(got, {q: exact[q] for q in QIDS if q not in fallen})


def test_rank_fusion_reads_the_two_top_depth_lists(prompts, sides, matrices):
    dense, bm25 = matrices
    ids = [p.id for p in prompts]
    for genre, theme in FILTERS[:2]:
        mask = mask_of(prompts, genre, theme)
        d, b = candidate_lists(QIDS, ids, dense, bm25, 4, mask)
        assert all(len(d[q]) <= 4 and len(b[q]) <= 4 and all(s > 0 for s in b[q].values()) for q in QIDS)
        want = rrf([d, b], 60, top=5, qids=QIDS)
        identical(system_run("hybrid-rrf", QIDS, ids, dense, bm25, 5, depth=4, mask=mask), want)
        identical(RRFSystem(list(sides), depth=4).search(QUERIES, 5, mask), want)


def test_tuning_scores_what_is_served(prompts, sides):
    """The dev metric per alpha at a small depth is the full-corpus fusion's (depth = the corpus)."""
    dense, bm25 = sides
    qrels = {"q1": {prompts[0].id: 1}, "q2": {prompts[5].id: 2}, "q5": {prompts[9].id: 1}}
    dev = [(q, t) for q, t in QUERIES if q in qrels]
    grid = (0.0, 0.3, 0.7, 1.0)
    for adaptive in (False, True):
        small = alpha_grid_scores(dense, bm25, dev, qrels, "ndcg@10", grid, 3, adaptive=adaptive)
        full = alpha_grid_scores(dense, bm25, dev, qrels, "ndcg@10", grid, len(prompts), adaptive=adaptive)
        assert small == full


@pytest.mark.parametrize("kind", ["hybrid", "hybrid-adaptive", "hybrid-rrf"])
def test_serving_returns_exactly_what_evaluation_scores(prompts, kind):
    depth = 3
    (system,) = build_systems([kind], prompts, depth=depth)
    if isinstance(system, WeightedFusionSystem):
        system.alpha = 0.3
    if isinstance(system, AdaptiveFusionSystem):
        system.alphas = ALPHAS
    spec, model = system.servable()
    assert spec.depth == depth and spec.kind == kind
    served = PromptRetriever(model, system=spec).index(prompts)
    for genre, theme in FILTERS:
        mask = mask_of(prompts, genre, theme)
        want = system.search(QUERIES, 4, mask)
        if kind != "hybrid-rrf":
            d, b = system.dense.scores(TEXTS), system.bm25.scores(TEXTS)
            identical(want, reference(kind, system.dense.ids, d, b, 4, mask, 0.3))
        got = served.search_requests([SearchRequest(t, 4, genre, theme) for t in TEXTS])
        for qid, hits in zip(QIDS, got, strict=True):
            assert [h.prompt.id for h in hits] == rank(want[qid])
            assert {h.prompt.id: h.score for h in hits} == want[qid]


def test_depth_is_recorded_validated_and_defaults_for_old_records(small_prompts, tmp_path):
    spec = SystemSpec("hybrid", alpha=0.3, depth=7)
    assert SystemSpec.from_dict(spec.to_dict()) == spec and spec.to_dict()["depth"] == 7
    assert SystemSpec.from_dict({"kind": "hybrid", "alpha": 0.3}).depth == DEFAULT_DEPTH
    for bad in (0, 1.5, True, "7"):
        with pytest.raises(InputError, match="depth"):
            SystemSpec.from_dict({"kind": "hybrid", "depth": bad})
    with pytest.raises(InputError):
        WeightedFusionSystem(*build_systems(["all-MiniLM-L6-v2", "bm25"], small_prompts), depth=0)

    run = tmp_path / "run"
    PromptRetriever(system=spec).index(small_prompts).save_run(run, {"label": "mine"})
    assert PromptRetriever.from_run(run).system.depth == 7
    # a run written before the depth was recorded: system.json and the index manifest without it
    for path, key in ((run / "system.json", None), (run / "index" / "manifest.json", "system")):
        doc = json.loads(path.read_text())
        (doc[key] if key else doc).pop("depth")
        path.write_text(json.dumps(doc))
    old = PromptRetriever.from_run(run)
    assert old.system.depth == DEFAULT_DEPTH and old.system.alpha == 0.3
    assert old.search("lighthouse", k=2)


# -- fusion "candidates": the union's best is the system itself --------------------------------------------


def unions_best(kind, ids, dense, bm25, mask, depth, k):
    """The candidates system by hand: each side's top `depth` among the allowed prompts (BM25: matches),
    their union scored from the reference fused row, its best `k` by score, ties by corpus position."""
    fused = reference(kind, ids, dense, bm25, len(ids), None, 0.3)  # every prompt, unmasked, with scores
    allowed = range(len(ids)) if mask is None else np.flatnonzero(mask)
    out = {}
    for i, q in enumerate(QIDS):
        d = sorted(allowed, key=lambda j: (-dense[i, j], j))[:depth]
        b = [j for j in sorted(allowed, key=lambda j: (-bm25[i, j], j)) if bm25[i, j] > 0][:depth]
        union = sorted(set(d) | set(b), key=lambda j: (-fused[q][ids[j]], j))[:k]
        out[q] = {ids[j]: fused[q][ids[j]] for j in union}
    return out


@pytest.mark.parametrize("kind", ["hybrid", "hybrid-adaptive"])
def test_candidate_fusion_is_the_unions_best_and_differs_from_the_corpus_fusion(prompts, matrices, kind):
    """Each query's best among the union of each side's top `depth` and nothing else (no fallback over
    the whole corpus), scored as the corpus fusion scores them; the union is taken at `depth` whatever k
    (a k beyond the union gets the union), so the top 10 of a longer answer is the 10-result answer."""
    dense, bm25 = matrices
    ids = [p.id for p in prompts]
    args = dict(alpha=0.3, texts=TEXTS, alphas=ALPHAS)
    differ = 0
    for genre, theme in FILTERS:
        mask = mask_of(prompts, genre, theme)
        run = system_run(kind, QIDS, ids, dense, bm25, 10, mask=mask, depth=4, fusion="candidates", **args)
        identical(run, unions_best(kind, ids, dense, bm25, mask, 4, 10))
        corpus = system_run(kind, QIDS, ids, dense, bm25, 10, mask=mask, depth=4, **args)
        identical(corpus, reference(kind, ids, dense, bm25, 10, mask, 0.3))
        differ += sum(list(run[q]) != list(corpus[q]) for q in QIDS)
        longer = system_run(kind, QIDS, ids, dense, bm25, 100, mask=mask, depth=4, fusion="candidates", **args)
        identical(longer, unions_best(kind, ids, dense, bm25, mask, 4, 100))
        for q in QIDS:
            assert len(longer[q]) <= 8 and list(longer[q])[:10] == list(run[q])
    assert differ > 0


@pytest.mark.parametrize("kind", ["hybrid", "hybrid-adaptive"])
def test_a_candidate_fusion_system_is_tuned_chosen_and_served_as_measured(prompts, kind):
    """build_systems(fusion="candidates"): the servable spec carries the fusion, and the retriever answers
    (exact path and engine) what the system's search scores; tuning scores the union's best."""
    qrels = {"q1": {prompts[0].id: 1}, "q2": {prompts[5].id: 2}, "q5": {prompts[9].id: 1}}
    dev = ([(q, t) for q, t in QUERIES if q in qrels], qrels)
    (system,) = build_systems([kind], prompts, dev=dev, depth=2, fusion="candidates")
    assert system.report_extra["fusion"] == "candidates"
    assert system.servable()[0].fusion == "candidates" and system.servable()[0].depth == 2
    corpus = build_systems([kind], prompts, depth=2)[0]
    for s in (system, corpus):  # weights that use both sides (tuned ones may be 0 or 1, one side alone)
        s.alpha, s.alphas = 0.3, ALPHAS
    spec, model = system.servable()
    served = PromptRetriever(model, system=spec).index(prompts)
    engine = PromptRetriever(model, system=spec).index(prompts).use_engine("edge")
    differ = 0
    for genre, theme in FILTERS:
        mask = mask_of(prompts, genre, theme)
        want = system.search(QUERIES, 10, mask)
        differ += want != corpus.search(QUERIES, 10, mask)  # the fusion is what differs
        requests = [SearchRequest(t, 10, genre, theme) for t in TEXTS]
        longer = [SearchRequest(t, 100, genre, theme) for t in TEXTS]
        for way in (served, engine):
            for qid, hits in zip(QIDS, way.search_requests(requests), strict=True):
                assert [h.prompt.id for h in hits] == rank(want[qid])
                assert [h.score for h in hits] == pytest.approx([want[qid][h.prompt.id] for h in hits], abs=1e-5)
            for qid, hits in zip(QIDS, way.search_requests(longer), strict=True):  # the same system at any k
                assert [h.prompt.id for h in hits][:10] == rank(want[qid])
    assert differ > 0


def test_fusion_is_recorded_validated_and_chooses_the_engine_by_size(small_prompts, tmp_path):
    from prompt_retriever.search.engine_open import AUTO_MIN_PROMPTS_CANDIDATES, resolve_engine
    from prompt_retriever.search.spec import system_problem

    spec = SystemSpec("hybrid-adaptive", alphas=ALPHAS, depth=20, fusion="candidates")
    assert SystemSpec.from_dict(spec.to_dict()) == spec and spec.to_dict()["fusion"] == "candidates"
    assert "fusion" not in SystemSpec("hybrid").to_dict()  # the default is not written: old files read the same
    assert SystemSpec.from_dict({"kind": "hybrid"}).fusion == "corpus"
    for bad in ("whole", 1, None):
        assert "fusion" in system_problem({"kind": "hybrid", "fusion": bad})
        with pytest.raises(InputError, match="fusion"):
            SystemSpec.from_dict({"kind": "hybrid", "fusion": bad})
    with pytest.raises(InputError, match="fusion"):
        build_systems(["hybrid"], small_prompts, fusion="whole")
    run = tmp_path / "run"
    PromptRetriever(system=spec).index(small_prompts).save_run(run, {"label": "mine"})
    record = json.loads((run / "system.json").read_text())
    manifest = json.loads((run / "index" / "manifest.json").read_text())
    # newer formats: a version that knows no fusion refuses the run instead of serving the corpus fusion
    assert record["fusion"] == "candidates" and record["format"] == 2 and manifest["format"] == 3
    assert PromptRetriever.from_run(run).system == spec
    from prompt_retriever.evaluation.served import ServedSystem

    extra = ServedSystem.from_run(run).report_extra  # what `evaluate --run` reports about the run's system
    assert extra["fusion"] == "candidates" and extra["depth"] == 20
    plain = tmp_path / "plain"
    PromptRetriever(system=replace(spec, fusion="corpus")).index(small_prompts).save_run(plain, {"label": "old"})
    assert json.loads((plain / "system.json").read_text())["format"] == 1
    assert json.loads((plain / "index" / "manifest.json").read_text())["format"] == 2
    from prompt_retriever.errors import IndexLoadError

    for path, key, fmt in ((run / "system.json", "format", 1), (run / "index" / "manifest.json", "format", 2)):
        doc = json.loads(path.read_text())  # an older format cannot hold the fusion: refused, not misread
        path.write_text(json.dumps({**doc, key: fmt}))
        with pytest.raises(IndexLoadError, match="format"):
            PromptRetriever.from_run(run)
        path.write_text(json.dumps(doc))
    n = AUTO_MIN_PROMPTS_CANDIDATES
    assert resolve_engine("auto", n, "hybrid-adaptive", "candidates") == "edge"
    assert resolve_engine("auto", n - 1, "hybrid", "candidates") == "exact"
    assert resolve_engine("auto", 10**7, "hybrid-adaptive") == "exact"  # the corpus fusion stays in process
    assert resolve_engine("auto", 10**7, "hybrid-rrf", "candidates") == "exact"


def test_tuning_a_candidate_fusion_scores_the_unions_best(prompts, sides):
    from prompt_retriever.evaluation.metrics import per_query

    dense, bm25 = sides
    qrels = {"q1": {prompts[0].id: 1}, "q2": {prompts[5].id: 2}, "q5": {prompts[9].id: 1}, "q7": {prompts[3].id: 1}}
    dev = [(q, t) for q, t in QUERIES if q in qrels]
    qids, texts = [q for q, _ in dev], [t for _, t in dev]
    d, b = dense.scores(texts), bm25.scores(texts)
    grid = (0.0, 0.3, 0.7, 1.0)
    got = alpha_grid_scores(dense, bm25, dev, qrels, "ndcg@10", grid, 2, fusion="candidates")
    for a in grid:  # by hand: the union of each side's top 2, its best 10 by the fused score
        want = {}
        for i, q in enumerate(qids):
            fused = a * normalize(d[i : i + 1])[0] + (1 - a) * normalize(b[i : i + 1])[0]
            top_d = sorted(range(len(prompts)), key=lambda j: (-d[i, j], j))[:2]
            top_b = [j for j in sorted(range(len(prompts)), key=lambda j: (-b[i, j], j)) if b[i, j] > 0][:2]
            union = sorted(set(top_d) | set(top_b), key=lambda j: (-fused[j], j))[:10]
            want[q] = {dense.ids[j]: float(fused[j]) for j in union}
        assert got[a] == per_query(want, qrels, ["ndcg@10"])["ndcg@10"]
    system = WeightedFusionSystem(dense, bm25, depth=2, fusion="candidates")
    _, by_alpha = tune_alpha(system, dev, qrels, grid=grid)
    assert by_alpha == {a: sum(v.values()) / len(v) for a, v in got.items()}
