"""The query set an evaluation runs on: a golden folder, a judged JSONL file or an imported pairs/RAGAS file.

A judged or imported file is evaluated whole, as the test split. Given together with a golden folder, it
is read over that folder's corpus and the folder's dev split is added to it, for tuning the hybrids'
fusion weights; without one, over the corpus the caller gives (a list of prompts, or a function that
loads it, called only when needed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ..corpus import Prompt, corpus_fingerprint
from ..errors import InputError
from .goldenset import GoldenSet, load_query_set

# The corpus to read a judged or imported file over when no golden folder brings one.
CorpusSource = Sequence[Prompt] | Callable[[], Sequence[Prompt]]


def _prompts(corpus: CorpusSource | None) -> list[Prompt]:
    if corpus is None:
        raise InputError("a judged or imported query set needs a corpus (or a golden set, which brings its own)")
    return list(corpus() if callable(corpus) else corpus)


def with_dev_split(gs: GoldenSet, base: GoldenSet | None) -> GoldenSet:
    """`gs` with `base`'s dev queries and dev split added (queries `gs` already has are kept as they are);
    `gs` itself when `base` has no dev split. Nothing passed in is changed."""
    if base is None or not base.splits.get("dev"):
        return gs
    dev = [qid for qid in base.splits["dev"] if qid not in gs.qrels]
    wanted = set(dev)
    return replace(
        gs,
        queries=gs.queries + [q for q in base.queries if q.id in wanted],
        qrels={**gs.qrels, **{qid: base.qrels[qid] for qid in dev}},
        splits={**gs.splits, "dev": dev},
    )


def load_eval_set(golden: Path | None, judged: Path | None, corpus: CorpusSource | None = None) -> GoldenSet:
    """The golden set to evaluate: the `golden` folder, or the `judged` queries (JSONL) over a corpus: over
    the golden folder's, with its dev split for tuning, when both are given; else over `corpus`."""
    if golden is None and judged is None:
        raise InputError("no query set: give a golden set folder or a judged query file")
    base = GoldenSet.load(golden) if golden else None
    if judged is None:
        assert base is not None
        return base
    over = base.corpus if base else _prompts(corpus)
    gs = load_query_set(judged, over, dev_from=base)
    assert gs is not None  # a given path never yields None
    return gs


def load_imported_eval_set(
    path: Path,
    fmt: str | None,
    golden: Path | None,
    corpus: CorpusSource | None = None,
    *,
    skip_invalid: bool = False,
):
    """A pairs/RAGAS file imported on the fly, all of it the test split, and its import report: over the
    golden folder's corpus, with its dev split for tuning, when `golden` is given; else over `corpus`.

    Raises `GoldenImportError` (carrying the report) when the file has errors and `skip_invalid` is off.
    """
    from .importing import import_for_evaluation

    base = GoldenSet.load(golden) if golden else None
    prompts = base.corpus if base else _prompts(corpus)
    gs, report = import_for_evaluation(path, prompts, format=fmt, skip_invalid=skip_invalid)
    return with_dev_split(gs, base), report


def same_corpus(a: Sequence[Prompt], b: Sequence[Prompt]) -> bool:
    """Whether two prompt lists are the same corpus (the same prompts, by content)."""
    return corpus_fingerprint(list(a)) == corpus_fingerprint(list(b))
