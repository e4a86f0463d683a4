"""What the engine tests share (tests/test_edge.py, test_qdrant_index.py, test_engine_search.py): BM25
queries with repeated and unknown terms, a set of systems that covers every kind and the fusion's edge
cases, random unit vectors, and the check that an engine's BM25 candidates are BM25System's."""

from __future__ import annotations

import numpy as np
import pytest

from prompt_retriever.search.systems import BM25System, SystemSpec

BM25_QUERIES = [
    "lighthouse keeper ghost",
    "a love story on an overnight train",
    "robot mechanic in space",
    "the the war war",  # repeated terms count twice, as in bm25s
    "zzzz qqqq",  # no known term: no candidates
    "Lighthouses!",
]
SPECS = [
    SystemSpec("dense"),
    SystemSpec("bm25"),
    SystemSpec("hybrid", alpha=0.6, depth=10),
    SystemSpec("hybrid-rrf", depth=10),
    SystemSpec("hybrid-adaptive", alphas=(0.2, 0.5, 0.7, 0.9), depth=10),
    SystemSpec("hybrid-adaptive", alphas=(0.0, 0.0, 1.0, 1.0), depth=5),  # alpha 0 and 1: ties and deepening
    # the union's best, in one round (no proof, no deepening)
    SystemSpec("hybrid", alpha=0.6, depth=10, fusion="candidates"),
    SystemSpec("hybrid-adaptive", alphas=(0.0, 0.0, 1.0, 1.0), depth=5, fusion="candidates"),
]


def spec_id(spec: SystemSpec) -> str:
    return f"{spec.kind}-{spec.depth}" + ("" if spec.fusion == "corpus" else f"-{spec.fusion}")


def unit_vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def assert_bm25_equal(index, prompts, queries=BM25_QUERIES, genre=None):
    """Every candidate's score equals BM25System's over `prompts`, and the candidates are exactly the
    prompts BM25System scores above 0 (all of them: depth covers the corpus), best first."""
    system = BM25System(prompts)
    scores = system.scores(queries)
    allowed = {p.id for p in prompts if genre is None or p.genre.casefold() == genre.strip().casefold()}
    got = index.bm25_candidates(queries, depth=len(prompts) + 5, genre=genre)
    for row, cands in zip(scores, got, strict=True):
        expect = {pid: float(s) for pid, s in zip(system.ids, row, strict=True) if s > 0 and pid in allowed}
        assert {pid for pid, _ in cands} == set(expect)
        for pid, s in cands:
            assert s == pytest.approx(expect[pid], abs=1e-4)
        values = [s for _, s in cands]
        assert values == sorted(values, reverse=True)
