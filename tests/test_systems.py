from __future__ import annotations

import pytest

from prompt_retriever.evaluation.systems import (
    BM25System,
    DenseSystem,
    Retriever,
    RRFSystem,
    WeightedFusionSystem,
    build_systems,
    tune_alpha,
)


class FixedRun:
    """A stand-in system with a fixed ranking: tests fusion arithmetic, not a model."""

    def __init__(self, name, ranking):
        self.name, self.ranking = name, ranking

    def search(self, queries, k):
        return {qid: {pid: 1.0 / (i + 1) for i, pid in enumerate(self.ranking[:k])} for qid, _ in queries}


def test_bm25_stems_and_skips_non_matching(small_prompts):
    bm25 = BM25System(small_prompts)
    run = bm25.search([("q1", "lighthouses"), ("q2", "zzzz qqqq")], 5)
    titles = {p.id: p.title for p in small_prompts}
    assert {titles[pid] for pid in run["q1"]} == {"The Keeper's Last Log", "Beacon & Breakfast"}
    assert run["q2"] == {}
    assert all(s > 0 for s in run["q1"].values())
    assert isinstance(bm25, Retriever)


def test_dense_system_run(small_prompts):
    dense = DenseSystem("all-MiniLM-L6-v2", small_prompts)
    run = dense.search([("q", "a robot mechanic in space")], 3)
    assert len(run["q"]) == 3
    best = max(run["q"], key=run["q"].get)
    assert best == next(p.id for p in small_prompts if p.title == "Orbit of Small Repairs")


def test_rrf_fusion_arithmetic():
    a = FixedRun("a", ["x", "y", "z"])
    b = FixedRun("b", ["y", "w"])
    run = RRFSystem([a, b], k_rrf=60).search([("q", "")], 10)["q"]
    assert run["y"] == pytest.approx(1 / 62 + 1 / 61)
    assert run["x"] == pytest.approx(1 / 61)
    assert run["w"] == pytest.approx(1 / 62)
    assert max(run, key=run.get) == "y"


def test_weighted_fusion_alpha_extremes_and_tuning(small_prompts):
    dense = DenseSystem("all-MiniLM-L6-v2", small_prompts)
    bm25 = BM25System(small_prompts)
    q = [("q", "sleeper train argument")]
    only_dense = WeightedFusionSystem(dense, bm25, alpha=1.0).search(q, 8)["q"]
    assert max(only_dense, key=only_dense.get) == max(dense.search(q, 8)["q"], key=dense.search(q, 8)["q"].get)
    with pytest.raises(ValueError):
        WeightedFusionSystem(dense, bm25, alpha=1.5)
    target = next(p.id for p in small_prompts if p.title == "Sleeper Car to Vienna")
    system = WeightedFusionSystem(dense, bm25)
    best, grid = tune_alpha(system, q, {"q": {target: 1}})
    assert len(grid) == 11 and system.alpha == best
    assert grid[best] == max(grid.values())


def test_build_systems_specs(small_prompts):
    systems = build_systems(["bm25", "all-MiniLM-L6-v2", "hybrid", "hybrid-rrf"], small_prompts)
    assert [s.name for s in systems] == ["bm25", "all-MiniLM-L6-v2", "hybrid", "hybrid-rrf"]
    assert systems[2].dense is systems[1]  # one embedding of the corpus per model
    assert systems[2].report_extra["tuned_on"].startswith("none")
