"""Optional LLM-judged context relevance: an LLM says whether each retrieved prompt answers the query.

`llm_context_relevance@k` of a query is the share of its top-k prompts the judge calls relevant (the
LLM counterpart of context precision, with no qrels needed). Verdicts are cached on disk by (judge
model, template hash, query text, prompt id), so re-running an evaluation costs nothing. A verdict the
judge does not give as yes/no is counted as "unjudged" and left out of the mean, never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..corpus import Prompt
from ..fileio import atomic_write_json, cache_root, sha256_text
from ..llm import ChatClient, LLMError
from .metrics import rank

JUDGE_TEMPLATE = """A writer searched a library of creative-writing prompts for: "{query}"

One result was:
Title: {title}
Genre: {genre}; theme: {theme}
Prompt: {text}

Is this prompt relevant to what the writer searched for? Answer with one word: yes or no."""

_YES = re.compile(r"^\W*(yes|relevant)\b", re.IGNORECASE)
_NO = re.compile(r"^\W*(no|not relevant|irrelevant)\b", re.IGNORECASE)


@dataclass
class Judge:
    client: ChatClient
    template: str = JUDGE_TEMPLATE
    concurrency: int = 4
    cache_dir: Path | None = None
    unjudged: int = 0
    calls: int = 0

    def __post_init__(self) -> None:
        self.template_hash = sha256_text(self.template)[:12]
        self.dir = (self.cache_dir or cache_root() / "judge") / sha256_text(self.client.model)[:12]

    def _path(self, query: str, prompt: Prompt) -> Path:
        key = sha256_text(json.dumps([self.client.model, self.template_hash, query, prompt.id]))[:24]
        return self.dir / f"{key}.json"

    def verdict(self, query: str, prompt: Prompt) -> bool | None:
        path = self._path(query, prompt)
        try:
            return json.loads(path.read_text())["relevant"]
        except (OSError, ValueError, KeyError):
            pass
        answer = self.client.complete(
            [
                {
                    "role": "user",
                    "content": self.template.format(
                        query=query, title=prompt.title, genre=prompt.genre, theme=prompt.theme, text=prompt.text
                    ),
                }
            ],
            temperature=0.0,
            max_tokens=5,
        )
        self.calls += 1
        relevant = True if _YES.match(answer) else False if _NO.match(answer) else None
        atomic_write_json(path, {"relevant": relevant, "answer": answer[:50], "prompt_id": prompt.id})
        return relevant

    def context_relevance(
        self, queries: Sequence[tuple[str, str]], run: dict[str, dict[str, float]], prompts: dict[str, Prompt], k: int
    ) -> dict[str, float]:
        """query id -> share of its top-k prompts judged relevant (queries with no verdict are left out)."""
        jobs = [(qid, text, pid) for qid, text in queries for pid in rank(run.get(qid, {}))[:k]]
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            verdicts = list(pool.map(lambda j: self.verdict(j[1], prompts[j[2]]), jobs))
        per: dict[str, list[bool]] = {}
        for (qid, _, _), v in zip(jobs, verdicts, strict=True):
            if v is None:
                self.unjudged += 1
            else:
                per.setdefault(qid, []).append(v)
        return {qid: sum(vs) / len(vs) for qid, vs in per.items() if vs}


def judge_report(
    judge: Judge, report, corpus: Sequence[Prompt], k: int = 5, n_bootstrap: int = 2000, seed: int = 0
) -> dict[str, dict]:
    """Add `llm_context_relevance@k` (mean with bootstrap CI) to every system of an EvaluationReport."""
    from .stats import bootstrap_ci

    prompts = {p.id: p for p in corpus}
    pairs = [(q.id, q.text) for q in report.queries]
    out = {}
    for s in report.systems:
        try:
            values = judge.context_relevance(pairs, s.run, prompts, k)
        except LLMError as exc:
            raise LLMError(f"LLM judge failed for system {s.name}: {exc}") from exc
        est = bootstrap_ci(list(values.values()), n_resamples=n_bootstrap, seed=seed)
        out[s.name] = {**est.to_dict(), "queries_judged": len(values)}
        s.extra[f"llm_context_relevance@{k}"] = out[s.name]
    return out
