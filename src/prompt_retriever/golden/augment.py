"""Training-data augmentation: extra keyword queries made from train prompts only.

A dense model learns to find a prompt from a handful of its rarest words only from examples; the
golden set has two keyword queries per prompt, and whatever the epoch count the fine-tuned model
stayed well below BM25 on held-out keyword queries (docs/experiments.md, "Extra keyword queries").
More, different keyword queries for the *train* prompts teach that skill without touching dev or test:
new queries join the train split only, are made only from train prompts, and a string that is already
a query anywhere in the golden set is never added (so no query text crosses splits).

Measured on the bundled corpus (docs/experiments.md, "Extra keyword queries"): keyword queries rise,
but titles and genre queries fall, so the total is no better; hence `TrainConfig.keyword_augment` is 0
by default.
"""

from __future__ import annotations

import copy
import random

from ..errors import InputError
from .goldenset import GoldenSet, Query, make_query_id
from .keywords import TfidfKeywords
from .splits import check_leakage

AUGMENT_KIND = "keywords_extra"


def augment_keyword_queries(gs: GoldenSet, per_prompt: int, *, top: int = 8, seed: int = 42) -> GoldenSet:
    """A copy of `gs` whose train split also holds up to `per_prompt` new keyword queries per train prompt.

    Each new query is 2 or 3 of the prompt's `top` TF-IDF words (over the whole corpus's texts, as the
    heuristic generator does), in TF-IDF order; the source prompt is its one relevant prompt (grade 2).
    Deterministic for a given seed. `per_prompt` <= 0 returns `gs` itself.
    """
    if per_prompt <= 0:
        return gs
    if "train" not in gs.splits:
        raise InputError("the golden set has no train split; run `queries split` first")
    split_of = gs.prompt_split()
    if not split_of:
        raise InputError("keyword augmentation needs a split by prompt (`queries split --by prompt`)")
    out = copy.deepcopy(gs)
    tfidf = TfidfKeywords([p.text for p in gs.corpus])
    rng = random.Random(seed)
    seen = {q.text.casefold() for q in gs.queries}
    added = 0
    for p in sorted(gs.corpus, key=lambda p: p.id):
        if split_of.get(p.id) != "train":
            continue
        words_pool = tfidf.top(p.text, top)
        if len(words_pool) < 2:
            continue
        made = 0
        for _ in range(per_prompt * 10):  # bounded: a prompt with few distinct words gives fewer queries
            if made == per_prompt:
                break
            n = rng.choice([2, 3])
            words = sorted(rng.sample(words_pool, min(n, len(words_pool))), key=words_pool.index)
            text = " ".join(words)
            if text.casefold() in seen:
                continue
            seen.add(text.casefold())
            q = Query(make_query_id(AUGMENT_KIND, text), text, AUGMENT_KIND, p.id)
            out.queries.append(q)
            out.qrels[q.id] = {p.id: 2}
            out.splits["train"].append(q.id)
            added += 1
            made += 1
    out.manifest = dict(out.manifest) | {
        "augmentation": {"kind": AUGMENT_KIND, "per_prompt": per_prompt, "top": top, "seed": seed, "added": added}
    }
    check_leakage(out)  # the rules of the split still hold with the new queries
    return out
