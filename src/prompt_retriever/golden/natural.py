"""Natural-language queries: how writers describe what they want, not the prompt's own words.

The bundled corpus ships with `data/natural_queries.jsonl`, written by reading each prompt (at least four
per prompt, in six styles) as the offline stand-in for LLM-generated queries. One JSON object per line:

    {"prompt_id": "...", "query": "...", "style": "situation|mood|craft|question|thematic|constrained",
     "relevant": {"<prompt id>": 2, "<prompt id>": 1}}      # optional: judged against the whole corpus

A query is made from its source prompt, so a by-prompt split sends it to that prompt's split and no
held-out prompt's query is ever trained on. Without `relevant`, the source prompt is the one relevant
prompt (grade 2); with it, the judgments were made by reading the whole corpus (grade 2: what was asked,
1: acceptable), and the query is of kind `natural_judged`, the family the natural-query numbers come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import InputError
from ..fileread import read_jsonl
from .goldenset import GoldenSet, Qrels, Query, make_query_id

NATURAL_KIND = "natural"
JUDGED_KIND = "natural_judged"
STYLES = ("situation", "mood", "craft", "question", "thematic", "constrained")


@dataclass(frozen=True)
class NaturalQuery:
    prompt_id: str
    text: str
    style: str
    relevant: dict[str, int] | None = None  # every relevant prompt of the corpus, when judged

    @property
    def kind(self) -> str:
        return JUDGED_KIND if self.relevant else NATURAL_KIND


def bundled_natural_path() -> Path:
    return Path(str(resources.files("prompt_retriever") / "data" / "natural_queries.jsonl"))


def read_natural_queries(path: str | Path) -> list[NaturalQuery]:
    """Rows of a natural-query file, checked: an error names the file, the line and the problem."""
    out: list[NaturalQuery] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(read_jsonl(path), 1):
        where = f"{path}:{n}"
        if not isinstance(row, dict):
            raise InputError(f"{where}: expected a JSON object")
        pid, text, style = row.get("prompt_id"), row.get("query"), row.get("style")
        if not isinstance(pid, str) or not pid:
            raise InputError(f"{where}: 'prompt_id' must be a non-empty string")
        if not isinstance(text, str) or not text.split():
            raise InputError(f"{where}: 'query' must be a non-empty string")
        if style not in STYLES:
            raise InputError(f"{where}: 'style' must be one of {', '.join(STYLES)}, got {style!r}")
        text = " ".join(text.split())
        key = text.casefold()
        if key in seen:
            raise InputError(f"{where}: duplicate query {text!r} (first on line {seen[key]})")
        seen[key] = n
        relevant = row.get("relevant")
        if relevant is not None:
            if not isinstance(relevant, dict) or not relevant:
                raise InputError(f"{where}: 'relevant' must be a non-empty object of prompt id -> grade")
            if any(not isinstance(g, int) or isinstance(g, bool) or g not in (1, 2) for g in relevant.values()):
                raise InputError(f"{where}: grades in 'relevant' must be 1 or 2")
            if pid not in relevant:
                raise InputError(f"{where}: the judged query does not judge its own source prompt {pid}")
        out.append(NaturalQuery(pid, text, style, dict(relevant) if relevant else None))
    return out


def add_natural_queries(gs: GoldenSet, queries: Sequence[NaturalQuery], *, source: str = "") -> GoldenSet:
    """A new golden set: `gs` plus the natural queries whose prompts (and judged prompts) are in its corpus.

    Queries of prompts the corpus does not hold are left out and counted in the manifest (a user corpus
    shares no prompt with the bundled file); a query string that `gs` already has is an error.
    """
    ids = {p.id for p in gs.corpus}
    have = {q.text.casefold() for q in gs.queries}
    new_queries: list[Query] = []
    qrels: Qrels = {}
    skipped = 0
    for q in queries:
        rel = q.relevant or {q.prompt_id: 2}
        if q.prompt_id not in ids or not set(rel) <= ids:
            skipped += 1
            continue
        if q.text.casefold() in have:
            raise InputError(f"natural query {q.text!r} is already in the golden set")
        qid = make_query_id(q.kind, q.text)
        new_queries.append(Query(qid, q.text, q.kind, q.prompt_id))
        qrels[qid] = dict(rel)
    manifest = dict(gs.manifest)
    manifest["natural_queries"] = {
        "source": source,
        "added": len(new_queries),
        "judged": sum(q.kind == JUDGED_KIND for q in new_queries),
        "skipped_prompt_not_in_corpus": skipped,
    }
    out = GoldenSet(
        gs.corpus, [*gs.queries, *new_queries], {**gs.qrels, **qrels}, dict(gs.splits), list(gs.negatives), manifest
    )
    out.validate()
    return out


def add_generated_queries(gs: GoldenSet, extra: GoldenSet, *, source: str = "") -> GoldenSet:
    """A new golden set: `gs` plus the queries of `extra` (e.g. natural-language queries an LLM wrote for
    the same corpus), with their qrels and styles (`manifest["styles"]`). A query whose text `gs` already
    holds is left out and counted; a query judging a prompt `gs` does not hold is an error."""
    ids = {p.id for p in gs.corpus}
    have = {q.text.casefold() for q in gs.queries}
    new = [q for q in extra.queries if q.text.casefold() not in have]
    for q in new:
        if unknown := set(extra.qrels[q.id]) - ids:
            raise InputError(f"generated query {q.text!r} judges prompts not in the corpus: {sorted(unknown)[:3]}")
    manifest = dict(gs.manifest)
    styles = {q.id: s for q in new if (s := extra.manifest.get("styles", {}).get(q.id))}
    manifest["styles"] = {**gs.manifest.get("styles", {}), **styles}
    manifest["generated_queries"] = {
        "source": source,
        "added": len(new),
        "already_present": len(extra.queries) - len(new),
    }
    out = GoldenSet(
        gs.corpus,
        [*gs.queries, *new],
        {**gs.qrels, **{q.id: dict(extra.qrels[q.id]) for q in new}},
        dict(gs.splits),
        list(gs.negatives),
        manifest,
    )
    out.validate()
    return out
