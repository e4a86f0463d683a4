"""The dev score that picks a fine-tune's checkpoint: the project's graded NDCG@10 of the dense system.

`DevNDCGEvaluator` is a sentence-transformers evaluator (`BaseEvaluator`, formerly `SentenceEvaluator`)
that scores the model being trained exactly as `evaluation` scores a dense system: every prompt of the
corpus embedded with the document template (`encoding.prompt_document`), queries embedded as plain text,
both as an `Encoder` embeds them (`encoding.encode_texts`), ranked by the dense system's own run
(`search.systems.dense_run`) and scored with the project's trec_eval-exact `ndcg@10` over the graded
qrels (`evaluation.metrics`). So the dev NDCG@10 a checkpoint was kept for is the dev NDCG@10 that
`evaluate` reports for that model, and the one that chooses the served system.

This module imports sentence-transformers (the evaluator subclasses its class): import it when training.
"""

from __future__ import annotations

from collections.abc import Sequence

from sentence_transformers.base.evaluation import BaseEvaluator

from ..corpus import Prompt
from ..encoding.encoder import encode_texts, prompt_document
from ..evaluation.metrics import evaluate
from ..golden.goldenset import GoldenSet, Qrels
from ..search.systems import dense_run

# As the evaluation of a dense system: `DenseSystem`'s batch size and `evaluate_systems`' search depth.
BATCH_SIZE = 64
DEPTH = 100


class DevNDCGEvaluator(BaseEvaluator):
    """Graded NDCG@10 of a model on dev queries over the full corpus, as `evaluation` measures it.

    Called by the trainer at each evaluation step with the model being trained; returns
    `{"dev_ndcg@10": value}` (`primary_metric`, greater is better), which the trainer logs as
    `eval_dev_ndcg@10` and selects the best checkpoint by.

    Example::

        evaluator = DevNDCGEvaluator.from_golden(gs, cfg.template)  # None when the dev split is empty
        evaluator(model)["dev_ndcg@10"]  # the ndcg@10 of `evaluate_systems(gs, [dense], split="dev")`
        SentenceTransformerTrainer(model=model, evaluator=evaluator, ...)  # best checkpoint by it
    """

    def __init__(
        self,
        queries: Sequence[tuple[str, str]],
        prompts: Sequence[Prompt],
        qrels: Qrels,
        template: str,
        *,
        name: str = "dev",
        k: int = 10,
    ):
        """`queries`: (query id, text) pairs; `prompts`: the full corpus; `qrels`: graded relevance of
        each query (every query needs an entry); `template`: the document template the dense system uses."""
        super().__init__()
        self.queries = list(queries)
        self.ids = [p.id for p in prompts]
        self.documents = [prompt_document(p, template) for p in prompts]
        self.qrels = {qid: qrels[qid] for qid, _ in self.queries}
        self.name = name
        self.k = k
        self.metric = f"ndcg@{k}"
        self.primary_metric = f"{name}_{self.metric}"
        self.greater_is_better = True

    @classmethod
    def from_golden(cls, gs: GoldenSet, template: str, *, name: str = "dev") -> DevNDCGEvaluator | None:
        """The evaluator of `gs`'s dev split over its full corpus; None when the split has no queries."""
        qs = gs.split_queries("dev")
        if not qs:
            return None
        return cls([(q.id, q.text) for q in qs], gs.corpus, {q.id: gs.qrels[q.id] for q in qs}, template, name=name)

    def score(self, model) -> float:
        """The mean graded NDCG@k over the queries, `model` ranking the full corpus as a dense system."""
        qids = [q for q, _ in self.queries]
        matrix = encode_texts(model, self.documents, BATCH_SIZE)
        scores = encode_texts(model, [t for _, t in self.queries], BATCH_SIZE) @ matrix.T
        run = dense_run(qids, self.ids, scores, max(DEPTH, self.k))
        return evaluate(run, self.qrels, [self.metric])[self.metric]

    def __call__(self, model, output_path: str | None = None, epoch: float = -1, steps: int = -1) -> dict[str, float]:
        return {self.primary_metric: self.score(model)}

    def get_config_dict(self) -> dict:
        return {"metric": self.metric, "queries": len(self.queries), "corpus": len(self.ids)}
