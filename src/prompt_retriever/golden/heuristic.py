"""Heuristic golden-set generator: template and keyword queries with qrels that reflect each query's truth.

Relevance:
- genre query ("horror prompt"): every prompt of that genre, grade 1;
- genre + theme ("horror prompt about grief"): every prompt with both, grade 1;
- theme query ("a story about grief"): every prompt with that theme, grade 1;
- title / keywords / paraphrase query: its source prompt, grade 2;
- genre + keywords ("horror: lighthouse keeper"): source grade 2, other prompts of that genre grade 1.

Negatives: `random` pairs from other genres and `hard` pairs (same genre, or the most similar text by
TF-IDF cosine) that are not relevant.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..corpus import Prompt
from ..feedback.records import query_key
from .goldenset import GoldenSet, Negative, Qrels, Query, make_query_id
from .keywords import TfidfKeywords, synonyms

GENRE_TEMPLATES = (
    "Find {a_genre} writing prompt",
    "{genre_l} prompt",
    "{genre_l} story ideas",
    "give me something to write in {genre_l}",
)
GENRE_THEME_TEMPLATES = ("{genre_l} prompt about {theme_l}", "a {theme_l} {genre_l} idea")
THEME_TEMPLATES = ("a story about {theme_l}", "writing prompt about {theme_l}", "{theme_l}")


@dataclass
class HeuristicConfig:
    seed: int = 42
    genre_templates: int = 4  # per genre, at most len(GENRE_TEMPLATES)
    genre_theme_templates: int = 1  # per (genre, theme) pair
    theme_templates: int = 3
    title_queries: bool = True
    keyword_queries: int = 2  # per prompt
    genre_keyword_queries: int = 1
    paraphrase_queries: int = 1
    random_negatives: int = 3  # per query with a source prompt
    hard_negatives: int = 3


class QueryBuilder:
    """Collects queries and qrels; the same query string from two places becomes one query."""

    def __init__(self) -> None:
        self.queries: dict[str, Query] = {}
        self.by_text: dict[str, str] = {}
        self.qrels: Qrels = {}
        self.dropped_duplicates = 0

    def add(self, kind: str, text: str, rels: dict[str, int], source_id: str | None = None) -> str | None:
        text = " ".join(text.split())
        key = query_key(text)
        if not text or not rels:
            return None
        if key in self.by_text:  # same string from two places: one query, judgments merged
            qid = self.by_text[key]
            for pid, g in rels.items():
                self.qrels[qid][pid] = max(g, self.qrels[qid].get(pid, 0))
            self.dropped_duplicates += 1
            return None
        qid = make_query_id(kind, text)
        self.queries[qid] = Query(qid, text, kind, source_id)
        self.by_text[key] = qid
        self.qrels[qid] = dict(rels)
        return qid


def _fmt(template: str, genre: str = "", theme: str = "") -> str:
    article = "an" if genre[:1].lower() in "aeiou" and genre else "a"
    return template.format(
        genre=genre, a_genre=f"{article} {genre}", genre_l=genre.lower(), theme=theme, theme_l=theme.lower()
    )


def generate_heuristic(prompts: Sequence[Prompt], config: HeuristicConfig | None = None) -> GoldenSet:
    cfg = config or HeuristicConfig()
    rng = random.Random(cfg.seed)
    prompts = sorted(prompts, key=lambda p: p.id)  # input order never changes the output
    b = QueryBuilder()

    by_genre: dict[str, list[str]] = defaultdict(list)
    by_theme: dict[str, list[str]] = defaultdict(list)
    by_pair: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in prompts:
        by_genre[p.genre].append(p.id)
        by_theme[p.theme].append(p.id)
        by_pair[(p.genre, p.theme)].append(p.id)

    for genre, ids in sorted(by_genre.items()):
        for t in GENRE_TEMPLATES[: cfg.genre_templates]:
            b.add("genre", _fmt(t, genre), dict.fromkeys(ids, 1))
    for (genre, theme), ids in sorted(by_pair.items()):
        for t in rng.sample(GENRE_THEME_TEMPLATES, min(cfg.genre_theme_templates, len(GENRE_THEME_TEMPLATES))):
            b.add("genre_theme", _fmt(t, genre, theme), dict.fromkeys(ids, 1))
    for theme, ids in sorted(by_theme.items()):
        for t in THEME_TEMPLATES[: cfg.theme_templates]:
            b.add("theme", _fmt(t, theme=theme), dict.fromkeys(ids, 1))

    tfidf = TfidfKeywords([p.text for p in prompts])
    lexicon = synonyms()
    for p in prompts:
        if cfg.title_queries:
            b.add("title", p.title, {p.id: 2}, p.id)
        top = tfidf.top(p.text, 6)
        if not top:
            continue
        made: list[list[str]] = []
        for i in range(cfg.keyword_queries):
            n = 3 if i == 0 else 2
            words = top[:n] if i == 0 else sorted(rng.sample(top, min(n, len(top))), key=top.index)
            made.append(words)
            b.add("keywords", " ".join(words), {p.id: 2}, p.id)
        for _ in range(cfg.genre_keyword_queries):
            words = top[:2]
            rels = dict.fromkeys(by_genre[p.genre], 1) | {p.id: 2}
            b.add("genre_keywords", f"{p.genre.lower()} {' '.join(words)}", rels, p.id)
        for _ in range(cfg.paraphrase_queries):
            base = made[0]
            swappable = [w for w in base if w in lexicon]
            if not swappable:
                continue
            swapped = [rng.choice(lexicon[w]) if w in swappable else w for w in base]
            if swapped != base:
                b.add("paraphrase", " ".join(swapped), {p.id: 2}, p.id)

    negatives = make_negatives(prompts, b, cfg.random_negatives, cfg.hard_negatives, rng, tfidf)
    manifest = {
        "generator": "heuristic",
        "seed": cfg.seed,
        "parameters": {k: v for k, v in vars(cfg).items() if k != "seed"},
        "keyword_method": "tf-idf (smoothed idf) over the corpus texts, stop words removed",
        "synonym_lexicon_entries": len(lexicon),
        "merged_duplicate_query_strings": b.dropped_duplicates,
    }
    gs = GoldenSet(list(prompts), list(b.queries.values()), b.qrels, {}, negatives, manifest)
    gs.validate()
    return gs


def _tfidf_matrix(prompts: Sequence[Prompt], tfidf: TfidfKeywords) -> np.ndarray:
    vocab = {w: i for i, w in enumerate(sorted(tfidf.idf))}
    m = np.zeros((len(prompts), len(vocab)), dtype=np.float32)
    for r, p in enumerate(prompts):
        for w, s in tfidf.scores(p.text):
            if w in vocab:
                m[r, vocab[w]] = s
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.maximum(norms, 1e-9)


def make_negatives(
    prompts: Sequence[Prompt],
    b: QueryBuilder,
    n_random: int,
    n_hard: int,
    rng: random.Random,
    tfidf: TfidfKeywords | None = None,
) -> list[Negative]:
    """Judged non-relevant pairs for queries made from one prompt (random: other genre; hard: close)."""
    index = {p.id: i for i, p in enumerate(prompts)}
    sims = _tfidf_matrix(prompts, tfidf or TfidfKeywords([p.text for p in prompts]))
    out: list[Negative] = []
    for q in b.queries.values():
        if q.source_id is None:
            continue
        src = prompts[index[q.source_id]]
        relevant = set(b.qrels[q.id])
        other_genre = [p.id for p in prompts if p.genre != src.genre and p.id not in relevant]
        for pid in rng.sample(other_genre, min(n_random, len(other_genre))):
            out.append(Negative(q.id, pid, "random"))
        # hard: most similar texts that are not relevant (same genre counts when the query has no genre)
        order = np.argsort(-(sims @ sims[index[src.id]]), kind="stable")
        hard = [prompts[i].id for i in order if prompts[i].id not in relevant][:n_hard]
        out.extend(Negative(q.id, pid, "hard") for pid in hard)
    return out
