"""Checks that fail when the bundled corpus degrades."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from prompt_retriever.corpus import bundled_corpus_paths, corpus_stats, read_corpus

STOCK_PHRASES = ["suddenly", "discovers a hidden", "must decide", "little did", "in a world where", "embark"]


@pytest.fixture(scope="module")
def report():
    return read_corpus(bundled_corpus_paths())


@pytest.fixture(scope="module")
def prompts(report):
    return report.prompts


def test_every_line_parses_without_issue(report):
    assert report.issues == []
    assert report.blank_lines == 0
    assert len(report.prompts) == report.lines_read


def test_ids_and_titles_unique(prompts):
    assert len({p.id for p in prompts}) == len(prompts)
    assert len({p.title.casefold() for p in prompts}) == len(prompts)


def test_size_and_genre_minimums(prompts):
    stats = corpus_stats(prompts)
    assert stats.count >= 600
    fiction = {p.genre for p in prompts if p.kind == "fiction"}
    nonfiction = {p.genre for p in prompts if p.kind == "nonfiction"}
    assert len(fiction) >= 16 and len(nonfiction) >= 10
    assert not fiction & nonfiction, "a genre is in both files"
    small = {g: n for g, n in stats.by_genre.items() if n < 15}
    assert not small, f"genres with fewer than 15 prompts: {small}"


def test_every_theme_spans_three_genres(prompts):
    stats = corpus_stats(prompts)
    narrow = {t: n for t, n in stats.genres_per_theme.items() if n < 3}
    assert not narrow, f"themes used by fewer than 3 genres: {narrow}"


def test_prompt_shape(prompts):
    for p in prompts:
        words = len(p.text.split())
        assert 10 <= words <= 90, (p.source, words)
        assert 1 <= len(p.title.split()) <= 9, p.source


def test_no_stock_phrases(prompts):
    found = [(p.source, s) for p in prompts for s in STOCK_PHRASES if s in p.text.lower()]
    assert not found, found


def test_no_overused_three_word_phrase(prompts):
    grams: Counter[str] = Counter()
    for p in prompts:
        w = re.findall(r"[a-z']+", p.text.lower())
        grams.update({" ".join(w[i : i + 3]) for i in range(len(w) - 2)})
    worst = grams.most_common(5)
    assert worst[0][1] <= 8, f"most repeated 3-word phrases: {worst}"


def test_no_near_duplicates(prompts):
    from prompt_retriever.encoding.encoder import Encoder

    emb = Encoder("all-MiniLM-L6-v2").encode_documents([p.text for p in prompts])
    sims = emb @ emb.T
    np.fill_diagonal(sims, -1.0)
    iu = np.triu_indices(len(prompts), 1)
    flat = sims[iu]
    order = np.argsort(-flat)[:5]
    worst = [(round(float(flat[o]), 3), prompts[iu[0][o]].source, prompts[iu[1][o]].source) for o in order]
    assert flat.max() < 0.92, f"near-duplicate prompt pairs (cosine, a, b): {worst}"
