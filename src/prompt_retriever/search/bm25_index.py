"""An in-process BM25 index that takes documents in and out without re-indexing the rest.

bm25s (which the project scored BM25 with until now) builds an immutable index: one new prompt meant
tokenizing and indexing the whole collection again. `BM25Index` keeps what BM25 needs to score, and
nothing derived from the collection's statistics, so that a change is local:

- per document: its term ids, term frequencies and length (document-major, append-only);
- per term: its postings (term-major, rebuilt from the document-major arrays now and then, without
  tokenizing anything), plus the documents added since, looked up directly;
- the statistics, kept exactly after every `add` / `remove`: document frequencies, the number of live
  documents and their total length.

A removed document is a tombstone until the next compaction. Scores come from bm25s's formulas
("lucene": k1 1.5, b 0.75, the same float64 / float32 steps in the same order), so they equal a fresh
`bm25s.BM25` over the same live documents bit for bit, after any sequence of changes
(tests/test_bm25_index.py). Each term's contributions are computed at its first use after a change and
kept until the next one, so a collection that does not change is scored as bm25s scores it: one
`np.add.at` of precomputed float32 contributions per query token.

Example:
    >>> from prompt_retriever.search.bm25_terms import tokenize
    >>> index = BM25Index()
    >>> index.add(tokenize(["a lighthouse keeper", "a train at dawn"]))
    >>> index.add(tokenize(["the last lighthouse"]))
    >>> index.remove([0])
    >>> [round(float(s), 3) for s in index.scores(tokenize(["lighthouse"]))[0]]
    [0.0, 0.277]
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from .bm25_terms import K1, B, lucene_idf

PENDING_MIN = 8192  # postings added since the last reindex before the term-major postings are rebuilt
DEAD_SHARE = 0.25  # share of tombstones that triggers a compaction


class BM25Index:
    """Lucene BM25 over documents given as token lists; positions are the live documents in order
    (an added document goes to the end; a removed one leaves, the rest keep their order)."""

    def __init__(self, k1: float = K1, b: float = B):
        self.k1, self.b = k1, b
        self.vocab: dict[str, int] = {}
        self.n_docs = 0
        self.total_len = 0
        self._df = np.zeros(0, dtype=np.int64)
        self._len = np.zeros(0, dtype=np.int64)  # per slot (live or tombstone)
        self._alive = np.zeros(0, dtype=bool)
        self._ptr = np.zeros(1, dtype=np.int64)  # document-major postings: slot -> [ptr[s], ptr[s + 1])
        self._terms = np.zeros(0, dtype=np.int32)
        self._tf = np.zeros(0, dtype=np.float32)
        self._indexed = 0  # slots below this are in the term-major postings
        self._csc = (np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
        self._fresh()

    def __len__(self) -> int:
        return self.n_docs

    def _fresh(self) -> None:
        """Forget everything derived from the statistics (they just changed)."""
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._live: np.ndarray | None = None
        self._pending_slots: np.ndarray | None = None

    @property
    def live_slots(self) -> np.ndarray:
        """The slot of each live document, in order (position -> slot)."""
        if self._live is None:
            self._live = np.flatnonzero(self._alive)
        return self._live

    # ------------------------------------------------------------------ changes
    def add(self, docs: Iterable[Sequence[str]]) -> None:
        """Append documents (token lists, as `bm25_terms.tokenize` makes them)."""
        docs = [list(tokens) for tokens in docs]  # read whole first: an input that fails changes nothing
        terms: list[int] = []
        tfs: list[int] = []
        sizes: list[int] = []
        lengths: list[int] = []
        for tokens in docs:
            counts = Counter(tokens)
            terms.extend(self.vocab.setdefault(w, len(self.vocab)) for w in counts)
            tfs.extend(counts.values())
            sizes.append(len(counts))
            lengths.append(len(tokens))
        if not sizes:
            return
        new_terms = np.asarray(terms, dtype=np.int32)
        if len(self.vocab) > len(self._df):
            self._df = np.concatenate([self._df, np.zeros(len(self.vocab) - len(self._df), dtype=np.int64)])
        self._df += np.bincount(new_terms, minlength=len(self._df))
        self._terms = np.concatenate([self._terms, new_terms])
        self._tf = np.concatenate([self._tf, np.asarray(tfs, dtype=np.float32)])
        self._ptr = np.concatenate([self._ptr, self._ptr[-1] + np.cumsum(sizes, dtype=np.int64)])
        self._len = np.concatenate([self._len, np.asarray(lengths, dtype=np.int64)])
        self._alive = np.concatenate([self._alive, np.ones(len(sizes), dtype=bool)])
        self.n_docs += len(sizes)
        self.total_len += sum(lengths)
        self._fresh()
        pending = len(self._terms) - int(self._ptr[self._indexed])
        if pending > max(PENDING_MIN, int(self._ptr[self._indexed]) // 8):
            self._reindex()

    def remove(self, positions: Iterable[int]) -> None:
        """Remove the live documents at `positions` (positions before the removal)."""
        pos = np.unique(np.asarray(list(positions), dtype=np.int64))
        if not len(pos):
            return
        if pos[0] < 0 or pos[-1] >= self.n_docs:
            raise IndexError(f"position {int(pos[-1] if pos[-1] >= self.n_docs else pos[0])} out of range")
        slots = self.live_slots[pos]
        gone = np.concatenate([self._terms[self._ptr[s] : self._ptr[s + 1]] for s in slots])
        self._df -= np.bincount(gone, minlength=len(self._df))
        self._alive[slots] = False
        self.n_docs -= len(slots)
        self.total_len -= int(self._len[slots].sum())
        self._fresh()
        if len(self._alive) - self.n_docs > DEAD_SHARE * len(self._alive):
            self._compact()

    def copy(self) -> BM25Index:
        """An independent copy (changes to either leave the other as it was); arrays are replaced, never
        written into, except the tombstones and the frequencies, which are copied here."""
        new = copy.copy(self)
        new.vocab = dict(self.vocab)
        new._df, new._alive = self._df.copy(), self._alive.copy()
        new._fresh()
        return new

    def _compact(self) -> None:
        """Drop the tombstones (the live documents take slots 0..n-1 in order) and the words no live
        document has any more (the others keep their order, renumbered)."""
        sizes = np.diff(self._ptr)
        keep = np.repeat(self._alive, sizes)
        self._ptr = np.concatenate([[0], np.cumsum(sizes[self._alive])]).astype(np.int64)
        self._len = self._len[self._alive]
        self._alive = np.ones(len(self._len), dtype=bool)
        used = self._df > 0
        renumber = np.cumsum(used) - 1
        self._terms, self._tf = renumber[self._terms[keep]].astype(np.int32), self._tf[keep]
        self.vocab = {w: int(renumber[t]) for w, t in self.vocab.items() if used[t]}
        self._df = self._df[used]
        self._reindex()

    def _reindex(self) -> None:
        """Rebuild the term-major postings from the document-major ones (no tokenizing)."""
        slots = np.repeat(np.arange(len(self._len), dtype=np.int32), np.diff(self._ptr))
        order = np.argsort(self._terms, kind="stable")
        counts = np.bincount(self._terms, minlength=len(self.vocab))
        self._csc = (np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), slots[order], self._tf[order])
        self._indexed = len(self._len)
        self._fresh()

    # ------------------------------------------------------------------ scoring
    def _postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        indptr, slots, tf = self._csc
        if term + 1 < len(indptr):
            a, b = indptr[term], indptr[term + 1]
            slots, tf = slots[a:b], tf[a:b]
        else:
            slots, tf = slots[:0], tf[:0]
        start = int(self._ptr[self._indexed])
        if start == len(self._terms):
            return slots, tf
        if self._pending_slots is None:
            sizes = np.diff(self._ptr[self._indexed :])
            self._pending_slots = np.repeat(np.arange(self._indexed, len(self._len), dtype=np.int32), sizes)
        hit = self._terms[start:] == term
        return np.concatenate([slots, self._pending_slots[hit]]), np.concatenate([tf, self._tf[start:][hit]])

    def _contributions(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """Each posting's float32 score for `term`, computed as bm25s computes its score matrix."""
        got = self._cache.get(term)
        if got is None:
            slots, tf = self._postings(term)
            df = int(self._df[term])
            idf = np.float32(lucene_idf(df, self.n_docs))
            avgdl = np.float64(self.total_len / self.n_docs)
            tfc = tf / (self.k1 * ((1 - self.b) + self.b * self._len[slots] / avgdl) + tf)
            got = self._cache[term] = (slots, (np.float64(idf) * tfc).astype(np.float32))
        return got

    def scores(self, queries: Sequence[Sequence[str]]) -> np.ndarray:
        """BM25 of every live document (columns, in order) for each query's tokens (rows); a token
        repeated counts again, a token no live document has counts nothing."""
        out = np.zeros((len(queries), self.n_docs), dtype=np.float32)
        if not self.n_docs:
            return out
        live = None if self.n_docs == len(self._alive) else self.live_slots
        for i, tokens in enumerate(queries):
            terms = [t for t in (self.vocab.get(w) for w in tokens) if t is not None and self._df[t] > 0]
            if not terms:
                continue
            acc = out[i] if live is None else np.zeros(len(self._alive), dtype=np.float32)
            for t in terms:
                slots, values = self._contributions(t)
                np.add.at(acc, slots, values)
            if live is not None:
                out[i] = acc[live]
        return out
