"""The feedback query family: writers' own requests, judged from the feedback log or by the owner, split by time.

A judged-feedback file is JSON lines, one query a line::

    {"query": "haunted lighthouse", "relevant": {"<prompt id>": 2, "<prompt id>": 1},
     "nonrelevant": ["<prompt id>"], "timestamp": "2026-12-07T10:00:00.000Z", "source": "clicks"}

`source` is `clicks` (implicit judgments a click model made from the log: `prompt-retriever feedback
judgments`) or `owner` (the owner's /judge page); `timestamp` is when the query was last searched or
judged; `nonrelevant` (optional) lists prompts judged not relevant (grade 0). Other keys are ignored.
A query of the clicks is of kind `feedback`, an owner's of kind `owner_judged`; both are the `feedback`
family of evaluation/choose.py.

The family is split by time, never by prompt: ordered by timestamp (ties by query text), the newest
`test` share is the test split, the next newest `dev` share dev, the oldest train. So a run is measured
on requests newer than any it trained on, and no test query's text is trained on (`split_by_prompt`
keeps these splits as they are; `check_leakage` checks the text rule).

>>> read = read_feedback([Path("judged.jsonl")], corpus)                     # doctest: +SKIP
>>> gs, record = add_feedback_family(gs, read, test=0.2, dev=0.1)          # doctest: +SKIP
>>> record["splits"]                                                       # doctest: +SKIP
{'train': 7, 'dev': 1, 'test': 2}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..corpus import Prompt, query_problem
from ..errors import InputError
from ..feedback.records import query_key
from ..fileio import sha256_file
from ..fileread import read_jsonl_numbered
from .goldenset import SPLITS, GoldenSet, Negative, Qrels, Query, make_query_id
from .splits import TIME_SPLIT_KINDS, check_leakage

FEEDBACK_KIND, OWNER_KIND = TIME_SPLIT_KINDS  # "feedback" (from clicks), "owner_judged" (the owner's)
FEEDBACK_KINDS = TIME_SPLIT_KINDS
KIND_OF_SOURCE = {"clicks": FEEDBACK_KIND, "owner": OWNER_KIND}
NEGATIVE_TYPE = "judged"  # the `Negative.type` of a prompt judged not relevant (grade 0)
MIN_TO_SPLIT = 3  # fewer queries than this all go to train (with a warning)


@dataclass(frozen=True)
class FeedbackQuery:
    """One judged request: its text, graded prompts (1 or 2), prompts judged not relevant, when it was
    last searched or judged (UTC), where it came from (`clicks` | `owner`) and the file line it was read at."""

    text: str
    relevant: dict[str, int]
    nonrelevant: tuple[str, ...]
    timestamp: datetime
    source: str
    where: str
    chained: int = 0  # relevant prompts query chains judged (evidence chain_grade 2, click_grade not 2)

    @property
    def kind(self) -> str:
        return KIND_OF_SOURCE[self.source]

    @property
    def key(self) -> str:
        """The text as duplicates are found: case and white space folded."""
        return query_key(self.text)


@dataclass
class FeedbackRead:
    """What `read_feedback` kept (one query per text, the latest) and what it left out, counted."""

    queries: list[FeedbackQuery]
    files: list[tuple[str, str]] = field(default_factory=list)  # (path, sha256)
    replaced: int = 0  # older lines of a query text, left out for its latest
    unknown_prompts: int = 0  # judgments of prompts not in the corpus, left out (`skip_unknown`)
    no_relevant: int = 0  # queries left with no relevant prompt after that, left out


def _timestamp(value: Any, where: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        ts = None
    if ts is None or ts.tzinfo is None:
        example = "2026-12-07T10:00:00Z"
        raise InputError(
            f"{where}: 'timestamp' must be an ISO-8601 time with a time zone, e.g. {example}; got {value!r}"
        )
    return ts.astimezone(UTC)


def _grades(rel: Any, where: str) -> dict[str, int]:
    if not isinstance(rel, dict) or not rel:
        raise InputError(f"{where}: need a non-empty 'relevant' object of prompt id -> grade (1 or 2)")
    for pid, grade in rel.items():
        if not isinstance(grade, int) or isinstance(grade, bool) or grade not in (1, 2):
            raise InputError(f"{where}: the grade of {pid!r} in 'relevant' must be 1 or 2, got {grade!r}")
    return dict(rel)


def _nonrelevant(value: Any, relevant: dict[str, int], where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise InputError(f"{where}: 'nonrelevant' must be a list of prompt ids")
    if both := sorted(set(value) & set(relevant)):
        raise InputError(f"{where}: prompt {both[0]!r} is both relevant and in 'nonrelevant'")
    return tuple(dict.fromkeys(value))


def parse_line(row: Any, where: str) -> FeedbackQuery:
    """One file line as a `FeedbackQuery`, checked (prompt ids are checked by `read_feedback`)."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object")
    text = row.get("query")
    if not isinstance(text, str) or (problem := query_problem(text)):
        raise InputError(f"{where}: need a non-empty 'query' string" + (f" ({problem})" if text else ""))
    relevant = _grades(row.get("relevant"), where)
    source = row.get("source")
    if source not in KIND_OF_SOURCE:
        raise InputError(f"{where}: 'source' must be one of {', '.join(KIND_OF_SOURCE)}, got {source!r}")
    return FeedbackQuery(
        " ".join(text.split()),
        relevant,
        _nonrelevant(row.get("nonrelevant"), relevant, where),
        _timestamp(row.get("timestamp"), where),
        source,
        where,
        _chained(row.get("evidence"), relevant),
    )


def _chained(evidence: Any, relevant: dict[str, int]) -> int:
    """How many of the relevant prompts query chains made relevant (`feedback.chains`; their evidence says
    so), for the report; evidence is informative only, so anything else in it counts nothing."""
    if not isinstance(evidence, dict):
        return 0
    return sum(
        1
        for pid in relevant
        if isinstance(ev := evidence.get(pid), dict) and ev.get("chain_grade") == 2 and ev.get("click_grade") != 2
    )


def read_lines(path: str | Path) -> list[FeedbackQuery]:
    """Every query line of one file, checked; an error names the file and the line."""
    try:
        rows = read_jsonl_numbered(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the judged-feedback file: {exc.strerror or exc}") from exc
    return [parse_line(row, f"{path}:{n}") for n, row in rows]


def prompt_names(corpus: Sequence[Prompt]) -> dict[str, str]:
    """How a line may name a prompt -> its id: by id, or by a title (any case) only one prompt has."""
    titles = Counter(p.title.casefold() for p in corpus)
    by_title = {p.title.casefold(): p.id for p in corpus if titles[p.title.casefold()] == 1}
    return by_title | {p.id: p.id for p in corpus}


def _known(q: FeedbackQuery, names: dict[str, str], skip: bool, read: FeedbackRead) -> FeedbackQuery | None:
    """`q` with its judgments named by prompt id: a prompt not in the corpus is an error, or, with `skip`,
    left out and counted (and a query left without a relevant prompt left out and counted)."""
    unknown = [key for key in (*q.relevant, *q.nonrelevant) if names.get(key, names.get(key.casefold())) is None]
    if unknown and not skip:
        raise InputError(
            f"{q.where}: prompt {unknown[0]!r} is not in the corpus (neither a prompt id nor the title of one "
            "prompt); skip unknown prompts to leave such judgments out"
        )
    read.unknown_prompts += len(unknown)

    def pid(key: str) -> str | None:
        return names.get(key, names.get(key.casefold()))

    relevant: dict[str, int] = {}
    for key, grade in q.relevant.items():
        if (found := pid(key)) is not None:
            relevant[found] = max(grade, relevant.get(found, 0))
    if not relevant:
        read.no_relevant += 1
        return None
    nonrelevant = tuple(dict.fromkeys(found for key in q.nonrelevant if (found := pid(key)) and found not in relevant))
    return FeedbackQuery(q.text, relevant, nonrelevant, q.timestamp, q.source, q.where, q.chained)


def read_feedback(paths: Iterable[str | Path], corpus: Sequence[Prompt], *, skip_unknown: bool = False) -> FeedbackRead:
    """The judged-feedback files, checked against the corpus, one query per text.

    A text on several lines (in one file or several; case and white space folded) is kept once: the latest
    by timestamp (on a tie the owner's over the clicks', then the later line), the others counted as
    `replaced`. A prompt is named by id (or by a title only one prompt has); one not in the corpus is an
    error naming the line unless `skip_unknown`."""
    names = prompt_names(corpus)
    read = FeedbackRead([])
    latest: dict[str, tuple[tuple, FeedbackQuery]] = {}
    order = 0
    for path in paths:
        read.files.append((str(path), sha256_file(path)))
        for q in read_lines(path):
            order += 1
            kept = _known(q, names, skip_unknown, read)
            if kept is None:
                continue
            rank = (kept.timestamp, kept.source == "owner", order)
            if kept.key in latest:
                read.replaced += 1
                if latest[kept.key][0] > rank:
                    continue
            latest[kept.key] = (rank, kept)
    read.queries = [q for _, q in latest.values()]
    return read


def time_split(
    queries: Sequence[FeedbackQuery], test: float, dev: float
) -> tuple[dict[str, list[FeedbackQuery]], str | None]:
    """The queries by split, by time: the newest `test` share to test (at least one when `test` > 0),
    the next newest `dev` share to dev (at least one when `dev` > 0 and three are left for it and train),
    the oldest to train; with fewer than `MIN_TO_SPLIT` queries, all to train and a warning (else None).
    Ties in time are ordered by text, so the split is the same for the same queries in any order."""
    ordered = sorted(queries, key=lambda q: (q.timestamp, q.key, q.text))
    n = len(ordered)
    if n < MIN_TO_SPLIT:
        warning = (
            f"only {n} feedback quer{'y' if n == 1 else 'ies'}: all go to train, none is held out to measure "
            f"on (at least {MIN_TO_SPLIT} are needed for a test split)"
        )
        return {"train": ordered, "dev": [], "test": []}, warning
    n_test = max(1, int(n * test + 0.5)) if test > 0 else 0
    n_dev = int(n * dev + 0.5)
    if dev > 0 and n_dev == 0 and n - n_test >= 3:
        n_dev = 1
    n_test = min(n_test, n - 1)  # train keeps at least one query
    n_dev = min(n_dev, n - 1 - n_test)
    n_train = n - n_test - n_dev
    return {
        "train": ordered[:n_train],
        "dev": ordered[n_train : n_train + n_dev],
        "test": ordered[n_train + n_dev :],
    }, None


def add_feedback_family(
    gs: GoldenSet, read: FeedbackRead, *, test: float, dev: float
) -> tuple[GoldenSet, dict[str, Any]]:
    """A new golden set: `gs` (split already) plus the feedback family in its time splits, and the family's
    record (counts, the time boundaries, what was left out; `manifest["feedback"]`).

    A query whose text `gs` already holds (e.g. a template query "horror") is left out and counted, so no
    query text is in two splits; the prompts judged not relevant become negatives of type `judged`."""
    have = {query_key(q.text) for q in gs.queries}
    fresh = [q for q in read.queries if q.key not in have]
    by_split, warning = time_split(fresh, test, dev)
    queries: list[Query] = []
    qrels: Qrels = {}
    negatives: list[Negative] = []
    splits = {name: list(gs.splits.get(name, [])) for name in SPLITS}
    for name in SPLITS:
        for q in by_split[name]:
            qid = make_query_id(q.kind, q.text)
            queries.append(Query(qid, q.text, q.kind, None))
            qrels[qid] = dict(q.relevant)
            negatives.extend(Negative(qid, pid, NEGATIVE_TYPE) for pid in q.nonrelevant)
            splits[name].append(qid)
    record = _record(read, by_split, len(read.queries) - len(fresh), len(negatives), warning)
    manifest = dict(gs.manifest) | {"feedback": record}
    out = GoldenSet(
        gs.corpus,
        [*gs.queries, *queries],
        {**gs.qrels, **qrels},
        splits,
        [*gs.negatives, *negatives],
        manifest,
    )
    out.validate()
    check_leakage(out)
    return out, record


def _record(
    read: FeedbackRead,
    by_split: dict[str, list[FeedbackQuery]],
    already_present: int,
    negatives: int,
    warning: str | None,
) -> dict[str, Any]:
    def stamp(q: FeedbackQuery | None) -> str | None:
        return q.timestamp.isoformat().replace("+00:00", "Z") if q else None

    everyone = [q for name in SPLITS for q in by_split[name]]
    return {
        "files": [list(f) for f in read.files],
        "split": "by time: the newest to test, the next newest to dev, the oldest to train",
        "queries": len(everyone),
        "by_kind": dict(sorted(Counter(q.kind for q in everyone).items())),
        "splits": {name: len(by_split[name]) for name in SPLITS},
        "train_until": stamp(by_split["train"][-1] if by_split["train"] else None),
        "test_from": stamp(by_split["test"][0] if by_split["test"] else None),
        "negatives": negatives,
        # train requests judged from clicks whose best prompt is grade 1: no training row by default
        # (`TrainConfig.click_positive_grade`), said in the report rather than dropped in silence
        "train_clicks_grade1_only": sum(
            1 for q in by_split["train"] if q.kind == FEEDBACK_KIND and max(q.relevant.values(), default=0) < 2
        ),
        # relevant prompts judged by query chains (writers who rephrased), not by clicks on them
        "pairs_by_chains": sum(q.chained for q in everyone),
        "replaced": read.replaced,
        "already_present": already_present,
        "unknown_prompts": read.unknown_prompts,
        "no_relevant": read.no_relevant,
        **({"warning": warning} if warning else {}),
    }
