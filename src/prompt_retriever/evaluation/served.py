"""The system a pipeline run serves, as one more system of an evaluation (`evaluate --run RUN`).

`ServedSystem` scores queries through the run's own `PromptRetriever` (`PromptRetriever.from_run`: the
run's model, kind, fusion weights and index over the run's corpus), that is through the very code that
answers `search --run` and `serve --run`, so the numbers it gets are the numbers users are served.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..search.retriever import PromptRetriever, SearchRequest
from ..search.runs import Run
from ..search.systems import System

# Facts of the run's system.json a report repeats beside the served system's numbers.
RUN_FACTS = ("name", "model", "model_fingerprint", "corpus_fingerprint", "dev_ndcg@10", "test_ndcg@10", "test")


class ServedSystem(System):
    """A run's served system behind the evaluation's `Retriever` protocol; named by the run's label."""

    def __init__(self, retriever: PromptRetriever, run_dir: str | Path, name: str | None = None):
        info = retriever.run_info or {}
        self.retriever = retriever
        self.run_dir = str(run_dir)
        self.kind = retriever.system.kind
        self.name = name or info.get("label") or f"run {self.run_dir}"
        self.info = info

    @classmethod
    def from_run(cls, run_dir: str | Path, **kwargs) -> ServedSystem:
        """The system `run_dir/system.json` describes, loaded (and checked) as `search --run` loads it."""
        return cls(PromptRetriever.from_run(run_dir, **kwargs), run_dir)

    @property
    def fingerprint(self) -> str | None:
        return None if self.kind == "bm25" else self.retriever.fingerprint

    @property
    def report_extra(self) -> dict:
        spec = self.retriever.system
        weights = {
            "hybrid": {"alpha": spec.alpha},
            "hybrid-adaptive": {"alphas": list(spec.alphas), "bounds": list(spec.bounds)},
            "hybrid-rrf": {"k_rrf": spec.k_rrf, "depth": spec.depth},
        }.get(spec.kind, {})
        recorded = {k: self.info[k] for k in RUN_FACTS if k in self.info}
        if spec.fuses_candidates:
            weights |= {"fusion": spec.fusion, "depth": spec.depth}
        return {"run": self.run_dir, "kind": spec.kind, **weights, "tuned_on": "the run's dev split", **recorded}

    def search(self, queries: Sequence[tuple[str, str]], k: int) -> Run:
        """Every query answered by the run's retriever over its whole corpus, as served."""
        hits = self.retriever.search_requests([SearchRequest(text, k) for _, text in queries])
        return {qid: {h.prompt.id: h.score for h in row} for (qid, _), row in zip(queries, hits, strict=True)}
