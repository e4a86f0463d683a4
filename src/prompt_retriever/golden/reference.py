"""Reference data: a collection with natural-language queries, for runs on collections that have none.

A writer's own collection arrives without queries in the words writers use, so a run trained and
chosen on its template queries alone forgets how writers ask and picks fusion weights that only short
template queries decided. A reference collection (by default the bundled corpus and its natural-language
queries) fills that gap in two disjoint parts, split by genre with a seed:

- **replay**: most genres' prompts and their natural queries, every query in the train split. Training
  mixes them with the collection's own rows, so what the model learned about descriptive requests stays
  learned (`merge_replay`).
- **proxy**: the other genres, never trained on: a small collection of its own whose natural queries
  (relevance restricted to its prompts) stand in for writers' requests on dev. Holding out whole genres
  makes the proxy what the user's collection is to the run: prompts of kinds it has not trained on.

Reference prompts that the collection itself holds (same id) are left out of both parts, with every query
that judges them, so nothing of the collection enters training through the reference.

    >>> ref = load_reference(bundled_corpus_paths(), bundled_natural_path(), seed=42)
    >>> len(ref.proxy_genres) > 0 and not set(ref.replay.prompt_by_id) & set(ref.proxy.prompt_by_id)
    True
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..corpus import Prompt, load_corpus
from ..errors import InputError
from ..feedback.records import query_key
from .goldenset import GoldenSet, Qrels, Query, make_query_id
from .natural import NaturalQuery, read_natural_queries

PROXY_SHARE = 0.25  # share of the reference's prompts held out (by whole genres) as the proxy collection


@dataclass(frozen=True)
class Reference:
    """The two parts of a reference collection: `replay` (train split only) and `proxy` (dev split only)."""

    replay: GoldenSet
    proxy: GoldenSet
    proxy_genres: tuple[str, ...]
    source: str

    def describe(self) -> dict:
        return {
            "source": self.source,
            "replay": {"prompts": len(self.replay.corpus), "queries": len(self.replay.queries)},
            "proxy": {
                "prompts": len(self.proxy.corpus),
                "queries": len(self.proxy.queries),
                "genres": list(self.proxy_genres),
            },
        }


def proxy_genres(prompts: Sequence[Prompt], share: float, seed: int) -> tuple[str, ...]:
    """Whole genres, in a seeded order, until they hold at least `share` of the prompts (at least one
    genre, and never every genre: the replay part keeps at least one)."""
    counts: dict[str, int] = {}
    for p in prompts:
        counts[p.genre] = counts.get(p.genre, 0) + 1
    genres = sorted(counts)
    if len(genres) < 2:
        raise InputError("a reference collection needs at least two genres (one to train on, one to choose on)")
    random.Random(seed).shuffle(genres)
    chosen: list[str] = []
    for g in genres[:-1]:
        if sum(counts[x] for x in chosen) >= share * len(prompts):
            break
        chosen.append(g)
    return tuple(sorted(chosen))


def _part(prompts: Sequence[Prompt], queries: Iterable[NaturalQuery], split: str, source: str) -> GoldenSet:
    """A golden set over `prompts` of the natural queries whose source prompt is among them, relevance
    restricted to them; every query in `split`."""
    ids = {p.id for p in prompts}
    out_queries: list[Query] = []
    qrels: Qrels = {}
    for q in queries:
        if q.prompt_id not in ids:
            continue
        # judgments of prompts outside the part are dropped; the source prompt itself is always judged
        rel = {pid: g for pid, g in (q.relevant or {q.prompt_id: 2}).items() if pid in ids}
        qid = make_query_id(q.kind, q.text)
        if qid in qrels:
            continue
        out_queries.append(Query(qid, q.text, q.kind, q.prompt_id))
        qrels[qid] = rel
    manifest = {"generator": "reference", "source": source, "parameters": {"split": split}}
    gs = GoldenSet(list(prompts), out_queries, qrels, {split: [q.id for q in out_queries]}, [], manifest)
    gs.validate()
    return gs


def load_reference(
    corpus: Sequence[str | Path],
    natural: str | Path,
    *,
    seed: int = 42,
    share: float = PROXY_SHARE,
    exclude: Iterable[str] = (),
) -> Reference:
    """The reference collection of `corpus` files and their `natural` query file, split by genre into
    replay and proxy (see the module docstring). `exclude`: prompt ids to leave out (the collection's own)."""
    if not 0.0 < share < 1.0:
        raise InputError(f"the proxy share must be in (0, 1), got {share}")
    skip = set(exclude)
    prompts = [p for p in load_corpus(list(corpus)) if p.id not in skip]
    queries = [
        q
        for q in read_natural_queries(natural)
        if q.prompt_id not in skip and not (q.relevant and set(q.relevant) & skip)
    ]
    if not prompts or not queries:
        raise InputError(f"the reference collection ({', '.join(map(str, corpus))}) has no prompts or no queries left")
    held = set(proxy_genres(prompts, share, seed))
    source = Path(natural).name
    replay = _part([p for p in prompts if p.genre not in held], queries, "train", source)
    proxy = _part([p for p in prompts if p.genre in held], queries, "dev", source)
    return Reference(replay, proxy, tuple(sorted(held)), source)


def merge_replay(gs: GoldenSet, replay: GoldenSet) -> GoldenSet:
    """A new golden set for training: `gs` plus the replay prompts (train prompts) and their queries (train
    split). `gs`'s dev and test splits are unchanged; a replay query whose text (case and spacing aside) is
    a dev or test query's is left out (counted in the manifest), so no held-out text is trained on; nothing
    passed in is changed."""
    if clash := {p.id for p in replay.corpus} & {p.id for p in gs.corpus}:
        raise InputError(f"replay prompts clash with the collection's own ids, e.g. {sorted(clash)[0]}")
    have = {q.id for q in gs.queries}
    held_ids = {qid for name in ("dev", "test") for qid in gs.splits.get(name, [])}
    held = {query_key(q.text) for q in gs.queries if q.id in held_ids}
    fresh = [q for q in replay.queries if q.id not in have]
    queries = [q for q in fresh if query_key(q.text) not in held]
    splits = {k: list(v) for k, v in gs.splits.items()}
    splits["train"] = [*splits.get("train", []), *(q.id for q in queries)]
    manifest = dict(gs.manifest)
    source = replay.manifest.get("source")
    manifest["replay"] = {
        "source": source,
        "prompts": len(replay.corpus),
        "queries": len(queries),
        "left_out_as_held_out_texts": len(fresh) - len(queries),
    }
    out = GoldenSet(
        [*gs.corpus, *replay.corpus],
        [*gs.queries, *queries],
        {**gs.qrels, **{q.id: dict(replay.qrels[q.id]) for q in queries}},
        splits,
        list(gs.negatives),
        manifest,
    )
    out.validate()
    return out
