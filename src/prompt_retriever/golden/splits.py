"""Leakage-free train/dev/test splits of a golden set.

By prompt (default): a seeded, genre-stratified fraction of prompts is held out for dev and test.
A query made from a prompt goes to that prompt's split. Template queries with no source prompt
(genre, theme, genre + theme) are assigned as whole groups (all phrasings of one genre, one theme or
one genre-theme pair together), so no query string and no paraphrase of it appears in two splits.
Search always runs over the full corpus; training uses only train queries and train prompts.
Families split by time (`TIME_SPLIT_KINDS`: writers' feedback, golden/feedback_family.py) keep the
splits they have: a by-prompt split never moves them.
"""

from __future__ import annotations

import random
from collections import defaultdict

from ..errors import InputError, LeakageError
from ..feedback.records import query_key
from .goldenset import SPLITS, GoldenSet, Query

TIME_SPLIT_KINDS = ("feedback", "owner_judged")  # query kinds split by time (feedback_family.py), kept as given


def _stratified_holdout(gs: GoldenSet, test: float, dev: float, rng: random.Random) -> dict[str, list[str]]:
    by_genre: dict[str, list[str]] = defaultdict(list)
    for p in sorted(gs.corpus, key=lambda p: p.id):
        by_genre[p.genre].append(p.id)
    held: dict[str, list[str]] = {"dev": [], "test": []}
    carry = {"dev": 0.0, "test": 0.0}
    for genre in sorted(by_genre):
        ids = by_genre[genre][:]
        rng.shuffle(ids)
        start = 0
        for name, frac in (("test", test), ("dev", dev)):
            exact = len(ids) * frac + carry[name]
            n = int(round(exact))
            carry[name] = exact - n
            held[name].extend(ids[start : start + n])
            start += n
    return {k: sorted(v) for k, v in held.items()}


def _group_key(q: Query, gs: GoldenSet) -> str:
    """Template queries that phrase the same need share a group (and so a split)."""
    if q.kind == "genre":
        prompts = gs.prompt_by_id
        genres = {prompts[pid].genre for pid in gs.qrels[q.id]}
        return "genre:" + "|".join(sorted(genres))
    if q.kind == "theme":
        prompts = gs.prompt_by_id
        themes = {prompts[pid].theme for pid in gs.qrels[q.id]}
        return "theme:" + "|".join(sorted(themes))
    if q.kind == "genre_theme":
        return "pair:" + "|".join(sorted(gs.qrels[q.id]))
    return "query:" + q.id


def split_by_prompt(gs: GoldenSet, test: float = 0.2, dev: float = 0.1, seed: int = 42) -> GoldenSet:
    if not (0 <= test < 1 and 0 <= dev < 1 and test + dev < 1):
        raise InputError(f"bad split fractions test={test} dev={dev}: each in [0, 1) and test + dev < 1")
    rng = random.Random(seed)
    held = _stratified_holdout(gs, test, dev, rng)
    prompt_split = {p.id: "train" for p in gs.corpus}
    for name, ids in held.items():
        for pid in ids:
            prompt_split[pid] = name

    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    groups: dict[str, list[Query]] = defaultdict(list)
    given = {qid: name for name, ids in gs.splits.items() for qid in ids}
    for q in gs.queries:
        if q.kind in TIME_SPLIT_KINDS:  # split by time already: kept where it is
            if q.id not in given:
                raise InputError(f"{q.kind} query {q.text!r} has no split: a family split by time keeps its own")
            splits[given[q.id]].append(q.id)
        elif q.source_id is not None:
            splits[prompt_split[q.source_id]].append(q.id)
        else:
            groups[_group_key(q, gs)].append(q)
    weights = [1 - test - dev, dev, test]
    for key in sorted(groups):
        name = rng.choices(SPLITS, weights=weights)[0]
        splits[name].extend(q.id for q in groups[key])

    manifest = dict(gs.manifest)
    manifest["split"] = {
        "by": "prompt",
        "test": test,
        "dev": dev,
        "seed": seed,
        "stratified_by": "genre",
        "template_queries": "assigned as whole groups (genre, theme, genre+theme pair)",
        "prompts": held,
    }
    out = GoldenSet(gs.corpus, gs.queries, gs.qrels, splits, gs.negatives, manifest)
    check_leakage(out)
    return out


def check_leakage(gs: GoldenSet) -> None:
    """Raise LeakageError if a query string is in two splits, or a query is not in its source's split."""
    seen: dict[str, str] = {}
    qmap = gs.query_by_id
    for name, ids in gs.splits.items():
        for qid in ids:
            key = query_key(qmap[qid].text)
            if key in seen and seen[key] != name:
                raise LeakageError(f"query {qmap[qid].text!r} is in splits {seen[key]} and {name}")
            seen[key] = name
    prompt_split = gs.prompt_split()
    if prompt_split:
        for name, ids in gs.splits.items():
            for qid in ids:
                src = qmap[qid].source_id
                if src is not None and prompt_split[src] != name:
                    raise LeakageError(f"query {qid} made from {prompt_split[src]} prompt {src} is in split {name}")
