"""LLM golden-set generator: short search queries per prompt from an OpenAI-compatible endpoint.

Every completion is cached on disk under a key of (endpoint model, template hash, prompt id, sample
index) as soon as it arrives, so a re-run costs nothing and an interrupted run resumes where it
stopped. Cleaning strips numbering, bullets, quotes and "Find me"-style prefixes, and drops empty,
duplicate and over-long queries and those containing the prompt's title verbatim; what was dropped
and why is reported.
"""

from __future__ import annotations

import json
import random
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from ..corpus import Prompt
from ..errors import InputError
from ..fileio import atomic_write_json, cache_root, sha256_text
from ..llm import REDACTED, ChatClient, LLMError
from .goldenset import GoldenSet
from .heuristic import QueryBuilder, make_negatives

MAX_QUERY_WORDS = 20
_NUMBERING = re.compile(r"^\s*(?:\(?\d{1,2}[.):\]]|[-*\u2022\u2013\u2014>#]+)\s*")
_PREFIX = re.compile(
    r"^(?:query|search|q|search query)\s*[:\-]\s*"
    r"|^(?:please\s+)?(?:find|show|give|get)\s+me\s+(?:an?\s+|some\s+)?",
    re.IGNORECASE,
)
_QUOTES = "\"'\u201c\u201d\u2018\u2019`"


def default_template() -> str:
    return (resources.files("prompt_retriever") / "data" / "templates" / "llm_queries.txt").read_text("utf-8")


def clean_queries(raw: str, title: str) -> tuple[list[str], Counter[str]]:
    """Turn a completion into clean queries; returns (kept, dropped reasons)."""
    kept: list[str] = []
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    for line in raw.splitlines():
        q = _NUMBERING.sub("", line).strip()
        q = _PREFIX.sub("", q).strip().strip(_QUOTES).strip().rstrip(".").strip()
        q = " ".join(q.split())
        if not q:
            if line.strip():
                dropped["empty after cleaning"] += 1
            continue
        if len(q.split()) > MAX_QUERY_WORDS:
            dropped["too long"] += 1
            continue
        key = q.casefold()
        if key in seen:
            dropped["duplicate"] += 1
            continue
        if title.casefold() in key:
            dropped["contains the title"] += 1
            continue
        if REDACTED.casefold() in key:
            dropped["contained the API key"] += 1
            continue
        seen.add(key)
        kept.append(q)
    return kept, dropped


@dataclass
class LLMConfig:
    base_url: str
    model: str
    queries_per_prompt: int = 3  # asked for in each completion (1-5)
    samples: int = 1  # completions per prompt
    concurrency: int = 4
    timeout: float = 60.0
    max_retries: int = 5
    temperature: float = 0.8
    seed: int = 42
    template: str | None = None  # template text; None = bundled default
    cache_dir: Path | None = None
    verify_tls: bool = True
    extra: dict = field(default_factory=dict)


@dataclass
class LLMRunReport:
    requested: int = 0
    from_cache: int = 0
    generated: int = 0
    failed: list[str] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    kept: int = 0


class LLMQueryGenerator:
    def __init__(self, config: LLMConfig, client: ChatClient | None = None):
        if not 1 <= config.queries_per_prompt <= 5:
            raise InputError("queries_per_prompt must be between 1 and 5")
        self.cfg = config
        self.template = config.template or default_template()
        self.template_hash = sha256_text(self.template)[:12]
        self.client = client or ChatClient(
            config.base_url,
            config.model,
            timeout=config.timeout,
            max_retries=config.max_retries,
            temperature=config.temperature,
            verify_tls=config.verify_tls,
            seed=config.seed,
        )
        self._render(Prompt("x", "g", "t", "title", "text"))  # fail early on a bad template
        self.cache_dir = (config.cache_dir or cache_root() / "llm") / sha256_text(config.model)[:12]

    def _render(self, prompt: Prompt) -> str:
        try:
            return self.template.format(
                genre=prompt.genre,
                theme=prompt.theme,
                title=prompt.title,
                text=prompt.text,
                n=self.cfg.queries_per_prompt,
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(
                f"bad query template: {exc!r}; placeholders are {{genre}} {{theme}} {{title}} {{text}} {{n}}"
            ) from exc

    def endpoint_parameters(self) -> dict:
        """What a generated set's manifest records of how it was asked for: endpoint, model, sampling,
        and the template's hash."""
        return {
            "base_url": self.cfg.base_url,
            "model": self.cfg.model,
            "samples": self.cfg.samples,
            "temperature": self.cfg.temperature,
            "template_sha256_12": self.template_hash,
        }

    def _key(self, prompt: Prompt, sample: int) -> str:
        return sha256_text(json.dumps([self.cfg.model, self.template_hash, prompt.id, sample]))[:24]

    def _cache_path(self, prompt: Prompt, sample: int) -> Path:
        return self.cache_dir / f"{self._key(prompt, sample)}.json"

    def _cached(self, prompt: Prompt, sample: int) -> str | None:
        path = self._cache_path(prompt, sample)
        if not path.exists():
            return None
        try:
            content = json.loads(path.read_text(encoding="utf-8"))["content"]
            if not isinstance(content, str):
                raise TypeError("content is not text")
            return content
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"LLM cache entry {path} unreadable ({exc}); asking the endpoint again", stacklevel=2)
            return None

    def _fetch(self, prompt: Prompt, sample: int) -> str:
        user = self._render(prompt)
        content = self.client.complete([{"role": "user", "content": user}], **self.cfg.extra)
        atomic_write_json(
            self._cache_path(prompt, sample),
            {
                "model": self.cfg.model,
                "template": self.template_hash,
                "prompt_id": prompt.id,
                "sample": sample,
                "content": content,
            },
        )
        return content

    def completions(self, prompts: Sequence[Prompt], progress: bool = True) -> tuple[dict, LLMRunReport]:
        """(prompt id, sample) -> completion text, from cache or endpoint. Failures are listed, not fatal."""
        report = LLMRunReport()
        results: dict[tuple[str, int], str] = {}
        todo = []
        for p in prompts:
            for s in range(self.cfg.samples):
                report.requested += 1
                cached = self._cached(p, s)
                if cached is not None:
                    results[(p.id, s)] = cached
                    report.from_cache += 1
                else:
                    todo.append((p, s))
        if todo:
            with ThreadPoolExecutor(max_workers=max(1, self.cfg.concurrency)) as pool:
                futures = {pool.submit(self._fetch, p, s): (p, s) for p, s in todo}
                bar = tqdm(total=len(futures), desc="LLM queries", unit="prompt", disable=not progress)
                for fut in as_completed(futures):
                    p, s = futures[fut]
                    try:
                        results[(p.id, s)] = fut.result()
                        report.generated += 1
                    except LLMError as exc:
                        report.failed.append(f"{p.id}#{s}: {exc}")
                    bar.update(1)
                bar.close()
        return results, report

    @staticmethod
    def check_failures(results: dict, report: LLMRunReport, allow_partial: bool) -> None:
        """Raise when a completion failed, unless `allow_partial` (what succeeded is cached either way)."""
        if report.failed and not allow_partial:
            raise LLMError(
                f"{len(report.failed)} of {report.requested} completions failed (the {len(results)} "
                f"that succeeded are cached; re-run to resume). First failure: {report.failed[0]}"
            )

    def generate(
        self, prompts: Sequence[Prompt], progress: bool = True, allow_partial: bool = False
    ) -> tuple[GoldenSet, LLMRunReport]:
        prompts = sorted(prompts, key=lambda p: p.id)
        results, report = self.completions(prompts, progress)
        self.check_failures(results, report, allow_partial)
        b = QueryBuilder()
        for p in prompts:
            for s in range(self.cfg.samples):
                raw = results.get((p.id, s))
                if raw is None:
                    continue
                kept, dropped = clean_queries(raw, p.title)
                report.dropped.update(dropped)
                for q in kept[: self.cfg.queries_per_prompt]:
                    b.add("llm", q, {p.id: 2}, p.id)
                    report.kept += 1
                if len(kept) > self.cfg.queries_per_prompt:
                    report.dropped["more than asked for"] += len(kept) - self.cfg.queries_per_prompt
        if not b.queries:
            raise LLMError("the endpoint produced no usable queries")
        negatives = make_negatives(prompts, b, 3, 3, random.Random(self.cfg.seed))
        manifest = {
            "generator": "llm",
            "seed": self.cfg.seed,
            "parameters": {**self.endpoint_parameters(), "queries_per_prompt": self.cfg.queries_per_prompt},
            "dropped": dict(report.dropped),
            "failed_completions": len(report.failed),
            "merged_duplicate_query_strings": b.dropped_duplicates,
        }
        gs = GoldenSet(list(prompts), list(b.queries.values()), b.qrels, {}, negatives, manifest)
        gs.validate()
        return gs, report
