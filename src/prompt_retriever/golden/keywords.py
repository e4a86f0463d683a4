"""Keyword extraction (TF-IDF over the corpus) and an offline synonym lexicon for paraphrases."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

from ..errors import InputError

# A compact English stop-word list plus words that are instructions in prompts, not content.
_STOP_TEXT = """
a about above after again against all almost also although always am among an and another any anyone
anything are around as at away back be became because become becomes been before began being below
between both but by came can cannot could did do does doing done down during each either else even
ever every everyone everything few first for from further get gets getting give given gives go goes
going gone got had has have having he her here hers herself him himself his how however i if in into
is it its itself just keep know last least less let like made make makes many may me might mine more
most much must my myself near never new next no nobody none nor not nothing now of off often on once
one only onto or other others our ours ourselves out over own perhaps put rather really said same
say says see seem seems several shall she should since so some someone something sometimes still
such take takes than that the their theirs them themselves then there these they thing things this
those though three through thus till to too toward towards two under until up upon us very was way
we well went were what whatever when where whether which while who whole whom whose why will with
within without would yet you your yours yourself yourselves write writes writing written describe
tell story stories prompt piece scene imagine reader narrate narrator character characters told
telling show account poem essay begin ends end moment day days year years time times one's
"""
STOPWORDS = frozenset(_STOP_TEXT.split())
_TOKEN = re.compile(r"[^\W\d_][\w'\-]*[^\W\d_]")


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower().replace("\u2019", "'")) if t not in STOPWORDS and len(t) > 2]


class TfidfKeywords:
    """Top content words of a document by tf * idf over a corpus (smoothed idf, as scikit-learn)."""

    def __init__(self, documents: Sequence[str]):
        self.n = len(documents)
        df: Counter[str] = Counter()
        for doc in documents:
            df.update(set(tokenize(doc)))
        self.idf = {w: math.log((1 + self.n) / (1 + c)) + 1.0 for w, c in df.items()}

    def scores(self, text: str) -> list[tuple[str, float]]:
        tf = Counter(tokenize(text))
        scored = [(w, c * self.idf.get(w, math.log(1 + self.n) + 1.0)) for w, c in tf.items()]
        first = {w: i for i, w in reversed(list(enumerate(tokenize(text))))}
        return sorted(scored, key=lambda ws: (-ws[1], first[ws[0]]))

    def top(self, text: str, k: int = 5) -> list[str]:
        return [w for w, _ in self.scores(text)[:k]]


@lru_cache(maxsize=1)
def synonyms() -> dict[str, list[str]]:
    """word -> synonyms, from the bundled `data/synonyms.tsv` (empty if absent)."""
    path = resources.files("prompt_retriever") / "data" / "synonyms.tsv"
    out: dict[str, list[str]] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise InputError(f"{path}:{n}: expected word<TAB>synonym,synonym")
        out[parts[0].strip()] = [s.strip() for s in parts[1].split(",") if s.strip()]
    return out
