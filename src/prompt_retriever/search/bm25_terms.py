"""BM25 as sparse vectors: the project's tokenizer and Lucene BM25 split into a document side and a query
side, so that a sparse dot product in an engine (Qdrant Edge, a Qdrant server) equals `BM25System.scores`.

`BM25System` scores as bm25s does (method "lucene", k1=1.5, b=0.75; `bm25_index.BM25Index`):

    score(q, d) = sum over the query's tokens t (repeats counted) of idf(t) * tf(t, d) / (tf(t, d) + K(d))
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5)),   K(d) = k1 * (1 - b + b * len(d) / avgdl)

over tokens from `tokenize` (bm25s: lower-case words, English stop words removed, PyStemmer's English
stemmer). `BM25Terms` splits it:

- document vector: term id -> tf / (tf + K(d)), with K computed from `avgdl_ref`;
- query vector: term id -> count of t in the query * idf(t), idf from the live `df` and `n_docs`.

The dot product is then the sum above. The statistics (`vocab`, `df`, `n_docs`, `total_len`) are kept
here, not by the engine: the engine's own IDF modifier counts deleted points until it vacuums a segment,
so its idf drifts after deletes; these counts are exact after every `add` / `remove`.

Updates and corpus statistics: adding or removing a document changes N and df (so idf of every term) and
avgdl. idf lives on the query side, so it is exact immediately. avgdl is baked into every document vector
through K(d): documents keep `avgdl_ref` (the average at the last (re)weighting) until `reweight`ed, and
until then each term's tf part, so each score, differs from a fresh `BM25System`'s by a relative amount
of at most d / (1 - d), where d = `drift` = abs(avgdl / avgdl_ref - 1). Scores equal `BM25System`'s
exactly (float32 rounding) when `drift == 0`, which holds after a build and after every reweight.

Example:
    >>> terms = BM25Terms()
    >>> docs = terms.add(tokenize(["a lighthouse keeper", "a train at dawn"]))
    >>> terms.query_vector("lighthouse")[0] == [terms.vocab["lighthous"]]
    True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

K1 = 1.5
B = 0.75

SparsePair = tuple[list[int], list[float]]


def lucene_idf(df: int, n_docs: int) -> float:
    """bm25s's "lucene" idf of a term in `df` of `n_docs` documents: ln(1 + (N - df + 0.5) / (df + 0.5))."""
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Tokens of each text exactly as `BM25System` makes them (bm25s, English stop words, English stemmer)."""
    import bm25s

    if not texts:
        return []
    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


@lru_cache(maxsize=4096)
def query_tokens(text: str) -> tuple[str, ...]:
    """`tokenize` of one query, remembered (a search asks the engine several things about one query)."""
    return tuple(tokenize([text])[0])


_STEMMER = None


def _stemmer():
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("english")
    return _STEMMER


class BM25Terms:
    """The vocabulary and collection statistics of a BM25 index whose postings live in an engine."""

    def __init__(self, k1: float = K1, b: float = B):
        self.k1, self.b = k1, b
        self.vocab: dict[str, int] = {}
        self.df: list[int] = []
        self.n_docs = 0
        self.total_len = 0
        self.avgdl_ref = 0.0

    @property
    def avgdl(self) -> float:
        """The live average document length (tokens)."""
        return self.total_len / self.n_docs if self.n_docs else 0.0

    @property
    def drift(self) -> float:
        """How far the live avgdl is from the one the document vectors were weighted with (relative)."""
        if not self.avgdl_ref:
            return 0.0 if not self.n_docs else math.inf
        return abs(self.avgdl / self.avgdl_ref - 1.0)

    def _k(self, length: int, avgdl: float) -> float:
        return self.k1 * (1 - self.b + self.b * length / avgdl) if avgdl else self.k1

    def doc_vector(self, counts: Counter[str], length: int) -> SparsePair:
        """The document side for a document already counted in the statistics."""
        k = self._k(length, self.avgdl_ref)
        ids = [self.vocab[w] for w in counts]
        return ids, [c / (c + k) for c in counts.values()]

    def add(self, docs: Sequence[Sequence[str]], *, reweighted: bool = False) -> list[tuple[SparsePair, int]]:
        """Count `docs` (token lists) into the statistics; returns each one's (document vector, length).
        The first add into an empty index (or `reweighted=True`) sets `avgdl_ref` to the live avgdl first."""
        counted = [(Counter(d), len(d)) for d in docs]
        for counts, length in counted:
            for w in counts:
                tid = self.vocab.setdefault(w, len(self.vocab))
                if tid == len(self.df):
                    self.df.append(0)
                self.df[tid] += 1
            self.n_docs += 1
            self.total_len += length
        if reweighted or not self.avgdl_ref:
            self.avgdl_ref = self.avgdl
        return [(self.doc_vector(c, n), n) for c, n in counted]

    def remove(self, term_ids: Sequence[int], length: int) -> None:
        """Take one document (its term ids, its length) out of the statistics."""
        for tid in term_ids:
            self.df[tid] -= 1
        self.n_docs -= 1
        self.total_len -= length
        if not self.n_docs:
            self.avgdl_ref = 0.0

    def idf(self, tid: int) -> float:
        df = self.df[tid]
        return lucene_idf(df, self.n_docs)

    def query_vector(self, text: str) -> SparsePair:
        """The query side: each known token (present in a live document) with count * idf."""
        counts = Counter(query_tokens(text)) if text else Counter()
        ids, values = [], []
        for w, c in counts.items():
            tid = self.vocab.get(w)
            if tid is not None and self.df[tid] > 0:
                ids.append(tid)
                values.append(c * self.idf(tid))
        return ids, values

    def recover_tf(self, values: Sequence[float], length: int) -> list[int]:
        """The term frequencies a document vector was made from (inverts tf / (tf + K); exact after
        rounding, float32 weights keep ample precision for the frequencies of prompt texts)."""
        k = self._k(length, self.avgdl_ref)
        return [max(1, round(v * k / (1 - v))) for v in values]

    def to_dict(self) -> dict:
        words = [""] * len(self.vocab)
        for w, i in self.vocab.items():
            words[i] = w
        return {
            "k1": self.k1,
            "b": self.b,
            "words": words,
            "df": self.df,
            "n_docs": self.n_docs,
            "total_len": self.total_len,
            "avgdl_ref": self.avgdl_ref,
        }

    @classmethod
    def from_dict(cls, data: dict) -> BM25Terms:
        terms = cls(float(data["k1"]), float(data["b"]))
        terms.vocab = {w: i for i, w in enumerate(data["words"])}
        terms.df = [int(x) for x in data["df"]]
        terms.n_docs, terms.total_len = int(data["n_docs"]), int(data["total_len"])
        terms.avgdl_ref = float(data["avgdl_ref"])
        if len(terms.df) != len(terms.vocab) or terms.n_docs < 0 or any(x < 0 for x in terms.df):
            raise ValueError("BM25 statistics are inconsistent")
        return terms
