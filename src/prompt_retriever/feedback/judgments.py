"""Graded relevance judgments from the feedback log: the click model (`clickmodel`) over every search and
event, one `JudgedQuery` per query with a prompt graded relevant, written as the judged-queries JSON lines
that `evaluate --judged` reads (`golden.goldenset.load_judged_queries`; it ignores the extra keys).

>>> result = store_judgments(open_store("feedback.db"))        # doctest: +SKIP
>>> write_judged(result, Path("judged.jsonl"))                # doctest: +SKIP
PosixPath('judged.jsonl')

Each line: {"query", "relevant": {prompt id: 1 or 2}, "nonrelevant": [prompt ids graded 0],
"timestamp" (the latest search, ISO 8601 UTC), "first_seen", "searches", "evidence": {prompt id: counts,
score, grade; with query chains also chains, reformulated, chain_grade and click_grade; a prompt only
chains judged, never shown for the query, has impressions 0 and no click counts}, "source": "clicks"}.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import OutputDirError
from ..fileio import atomic_write_jsonl
from .chains import ChainEstimate, ChainLog
from .clickmodel import ClickModelConfig, ClickModelResult, PairEstimate, estimate
from .records import EventRecord, QueryRecord, iso
from .store import FeedbackStore

SOURCE = "clicks"


@dataclass(frozen=True)
class JudgedQuery:
    """One query and its prompts graded from clicks: `relevant` (grade 1 or 2, best first), `nonrelevant`
    (grade 0 with enough impressions), when it was searched (`first_seen`, `timestamp`: the latest) and
    how often, and the `evidence` behind every grade (`PairEstimate.evidence`)."""

    query: str
    relevant: dict[str, int]
    nonrelevant: tuple[str, ...]
    timestamp: datetime
    first_seen: datetime
    searches: int
    evidence: dict[str, dict]

    def to_json(self) -> dict:
        return {
            "query": self.query,
            "relevant": dict(self.relevant),
            "nonrelevant": list(self.nonrelevant),
            "timestamp": iso(self.timestamp),
            "first_seen": iso(self.first_seen),
            "searches": self.searches,
            "evidence": {pid: dict(ev) for pid, ev in self.evidence.items()},
            "source": SOURCE,
        }


@dataclass(frozen=True, eq=False)
class JudgmentsResult:
    """The judgments and what they rest on. `queries`: those with a relevant prompt, in first-seen order;
    `n_without_relevant`: the other queries searched (none graded 1 or 2, or none shown often enough).
    `pairs_judged`: (query, prompt) pairs graded, `by_grade`: how many of each grade, `pairs_below_min`:
    pairs shown fewer than `min_impressions` times (not graded). `theta`, `theta_support`: the
    examination by rank and the impressions it is estimated from (`ClickModelResult`). `pairs_by_chains`:
    pairs that query chains made grade 2 (`chains`), counted in `by_grade` and `pairs_judged`."""

    queries: tuple[JudgedQuery, ...]
    theta: tuple[float, ...]
    theta_support: tuple[int, ...]
    pairs_judged: int
    pairs_below_min: int
    by_grade: dict[int, int]
    n_without_relevant: int
    searches: int
    events_used: int
    events_ignored: int
    corrected: bool
    converged: bool
    min_impressions: int
    pairs_by_chains: int = 0

    def to_json(self) -> dict:
        """The summary (no queries) as JSON."""
        return {
            "queries_judged": len(self.queries),
            "queries_without_relevant": self.n_without_relevant,
            "pairs_judged": self.pairs_judged,
            "pairs_by_grade": {str(g): n for g, n in sorted(self.by_grade.items())},
            "pairs_below_min": self.pairs_below_min,
            "pairs_by_chains": self.pairs_by_chains,
            "min_impressions": self.min_impressions,
            "searches": self.searches,
            "events_used": self.events_used,
            "events_ignored": self.events_ignored,
            "position_corrected": self.corrected,
            "converged": self.converged,
            "theta": [round(t, 4) for t in self.theta],
            "theta_support": list(self.theta_support),
        }


def _raised(est: PairEstimate | None, chain: ChainEstimate, config: ClickModelConfig) -> bool:
    """Whether chains make this pair grade 2: they are sure of it, the clicks are not already, and the
    writers' ratings of it are not mostly thumbs down."""
    if chain.grade != 2 or (est is not None and est.grade == 2):
        return False
    if est is None or not est.thumbs_down:
        return True
    return est.thumbs_down <= config.down_share * (est.thumbs_up + est.thumbs_down)


def judged_from(
    model: ClickModelResult, config: ClickModelConfig, chains: dict[tuple[str, str], ChainEstimate] | None = None
) -> JudgmentsResult:
    """The judgments of a fitted click model, with the pairs `chains` are sure of raised to grade 2
    (`ChainLog.estimates`; their chain evidence is kept beside the clicks')."""
    chains = chains or {}
    graded: dict[str, list[tuple[str, float, int, dict]]] = {}
    by_grade = {0: 0, 1: 0, 2: 0}
    raised = ungraded_raised = 0
    for pair in [*model.pairs, *(p for p in chains if p not in model.pairs)]:
        est, chain = model.pairs.get(pair), chains.get(pair)
        grade = est.grade if est is not None else None
        evidence = est.evidence() if est is not None else {"impressions": 0}
        if chain is not None:  # the clicks' grade kept as click_grade, the grade is the final one
            evidence |= chain.evidence() | {"click_grade": grade}
            if _raised(est, chain, config):
                ungraded_raised += est is not None and est.grade is None  # no longer "not graded"
                grade, raised = 2, raised + 1
            evidence["grade"] = grade
        if grade is not None:
            graded.setdefault(pair[0], []).append((pair[1], est.score if est is not None else 0.0, grade, evidence))
            by_grade[grade] += 1
    judged: list[JudgedQuery] = []
    for key, group in model.groups.items():
        rows = sorted(graded.get(key, []), key=lambda r: (-r[2], -r[1], r[0]))  # best grade, then score
        relevant = {object_id: g for object_id, _, g, _ in rows if g >= 1}
        if not relevant:
            continue
        judged.append(
            JudgedQuery(
                query=group.text,
                relevant=relevant,
                nonrelevant=tuple(object_id for object_id, _, g, _ in rows if g == 0),
                timestamp=group.last_seen,
                first_seen=group.first_seen,
                searches=group.searches,
                evidence={object_id: ev for object_id, _, _, ev in rows},
            )
        )
    return JudgmentsResult(
        queries=tuple(judged),
        theta=model.theta,
        theta_support=model.theta_support,
        pairs_judged=sum(by_grade.values()),
        pairs_below_min=model.pairs_below_min - ungraded_raised,
        by_grade=by_grade,
        n_without_relevant=len(model.groups) - len(judged),
        searches=model.searches,
        events_used=model.events_used,
        events_ignored=model.events_ignored,
        corrected=model.corrected,
        converged=model.converged,
        min_impressions=config.min_impressions,
        pairs_by_chains=raised,
    )


def implicit_judgments(
    queries: Iterable[QueryRecord],
    events: Iterable[EventRecord],
    config: ClickModelConfig = ClickModelConfig(),
    *,
    correct_bias: bool = True,
) -> JudgmentsResult:
    """Graded judgments from a log's searches and events (each iterated once), query chains included
    (`chains`); `correct_bias=False` grades plain clicks per impression instead of the position-corrected
    attractiveness."""
    chains = ChainLog(config)
    model = estimate(chains.searches(queries), chains.events(events), config, correct_bias=correct_bias)
    return judged_from(model, config, chains.estimates())


def store_judgments(
    store: FeedbackStore, config: ClickModelConfig = ClickModelConfig(), *, correct_bias: bool = True
) -> JudgmentsResult:
    """`implicit_judgments` over everything `store` keeps."""
    return implicit_judgments(store.queries(), store.iter_events(), config, correct_bias=correct_bias)


def check_judged_out(path: str | Path, *, force: bool = False) -> Path:
    """`path` if judgments may be written there: OutputDirError when it is a folder, or a file that
    exists and not `force` (call before any work)."""
    path = Path(path)
    if path.is_dir():
        raise OutputDirError(f"{path} is a folder: give the judged-queries file to write, e.g. judged.jsonl")
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputDirError(f"{path} already exists: pass --force to replace it, or choose another file")
    return path


def write_judged(
    result_or_queries: JudgmentsResult | Sequence[JudgedQuery], path: str | Path, *, force: bool = False
) -> Path:
    """Write one JSON line per `JudgedQuery` to `path` at once (written beside it, then renamed); an
    existing file is replaced only with `force` (OutputDirError otherwise)."""
    path = check_judged_out(path, force=force)
    queries = result_or_queries.queries if isinstance(result_or_queries, JudgmentsResult) else result_or_queries
    return atomic_write_jsonl(path, (q.to_json() for q in queries))
