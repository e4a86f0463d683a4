"""An experiment between the run served and a candidate run on live traffic (`serve --candidate RUN`), and
`GET /api/experiments`, its report (`feedback.experiments`).

For each search a seeded draw says whether it is in the experiment (`share` of them). In `interleave`
mode (the default) a search in it is answered by both runs (same k and filters, through the
`QueryBatcher`) and its answer is their team-draft interleaving cut to k (`feedback.interleave`); the
team of each result is kept with the search in the feedback store, never shown. In `ab` mode a search
in it is answered by the candidate alone, the others by the run served, and every search records its
arm. The draw and the coin flips of the interleaving come from one `random.Random(seed)`, taken in the
order searches arrive: the same seed and sequence of searches give the same answers. While the run
served is the candidate itself (it was promoted), searches are answered as usual and not recorded.

>>> experiment = Experiment(candidate_retriever, share=0.2)                     # doctest: +SKIP
>>> app = create_app(retriever, feedback=recorder, experiment=experiment)      # doctest: +SKIP
>>> httpx.get(base + "/api/experiments").json()["running"]                      # doctest: +SKIP
'run-b'

A search's answer is recorded with its team before its `query_id` is returned, through the recorder's
queue; `GET /api/experiments` first waits up to `FLUSH_SECONDS` for that queue to be written (under
steady traffic what arrived meanwhile may still be queued: the answer says `"flushed": false` then).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..errors import InputError, PromptRetrieverError
from ..feedback.experiments import INTERLEAVED, MODES, ExperimentRecord, OfflineNumbers, reports
from ..feedback.explore import Explorer, insert_from_below
from ..feedback.interleave import CANDIDATE, CURRENT, team_draft
from ..search.deployment import read_system
from ..search.retriever import Hit, PromptRetriever, SearchRequest
from ..search.systems import system_label
from .batcher import QueryBatcher
from .middleware import ApiError
from .schemas import InfoOut, PromptMapper
from .state import ServingState

if TYPE_CHECKING:
    from ..feedback.recorder import FeedbackRecorder
    from .live import LiveState

FLUSH_SECONDS = 2.0  # how long GET /api/experiments waits for the feedback queue to be written
MAX_NAME_CHARS = 200
MAX_SYSTEM_CHARS = 1000  # the store's system column


def check_setup(share: float, mode: str, name: str | None = None) -> None:
    """InputError for a share outside (0, 1], an unknown mode, ab with share 1 (no search left to the run
    served) or a name that is not 1-`MAX_NAME_CHARS` printable characters."""
    if not 0.0 < share <= 1.0:
        raise InputError(f"the experiment's share of searches must be in (0, 1], got {share:g}")
    if mode not in MODES:
        raise InputError(f"experiment mode {mode!r:.40}: use {' or '.join(MODES)}")
    if mode == "ab" and share == 1.0:
        raise InputError("mode ab with share 1: the run served would answer no search; give a share below 1")
    if name is not None and (not 0 < len(name) <= MAX_NAME_CHARS or not name.isprintable()):
        raise InputError(f"experiment name {name!r:.60}: 1-{MAX_NAME_CHARS} printable characters expected")


@dataclass(frozen=True)
class Answered:
    """The answer to one search: its hits in rank order, the run and system that answered (for the log
    and the metrics), how its prompts are mapped, and, in an experiment, what to record about it."""

    hits: list[Hit]
    run: str
    system: str
    prompt_out: PromptMapper
    experiment: Experiment | None = None
    arm: str | None = None
    teams: tuple[str, ...] | None = None
    current_run: str = ""

    def experiment_record(self, query_id: str, timestamp: datetime) -> ExperimentRecord | None:
        """What the feedback store keeps about this search's part in the experiment (None: no part)."""
        x = self.experiment
        if x is None or self.arm is None:
            return None
        return ExperimentRecord(
            query_id, x.name, x.mode, self.arm, self.teams, self.current_run, x.candidate_run, timestamp
        )


class Experiment:
    """The candidate run, its `share` of the searches, the `mode` and the seeded draws (see the module)."""

    def __init__(
        self,
        candidate: PromptRetriever,
        *,
        share: float,
        mode: str = "interleave",
        name: str | None = None,
        seed: int = 0,
    ):
        run_dir = candidate.__dict__.get("run_dir")
        if run_dir is None:
            raise InputError(
                "the candidate of an experiment must be a run folder (`prompt-retriever pipeline` makes one)"
            )
        self.state = ServingState(candidate)  # the candidate's prompts, filters and info, as the run served has
        self.run_dir = Path(run_dir).resolve()
        self.candidate_run = self.state.run_name
        self.name = self.candidate_run if name is None else name
        check_setup(share, mode, self.name)
        self.share, self.mode, self.seed = share, mode, seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def applies(self, state: ServingState) -> bool:
        """False while the run served is the candidate itself (promoted): nothing left to compare."""
        served = state.retriever.__dict__.get("run_dir")
        return served is None or Path(served).resolve() != self.run_dir

    def draw(self) -> tuple[bool, int]:
        """(whether the next search is in the experiment, the seed of its coin flips), in arrival order."""
        with self._lock:
            return self._rng.random() < self.share, self._rng.getrandbits(64)

    def check_store(self, recorder: FeedbackRecorder) -> None:
        """InputError if the store holds this experiment's name with another mode or candidate run (a name
        reused by mistake would mix two experiments in one report)."""
        setups = {s for s in recorder.store.experiment_setups(self.name) if s != (self.mode, self.candidate_run)}
        if setups:
            mode, run = sorted(setups)[0]
            raise InputError(
                f"the feedback store already holds experiment {self.name!r} run in mode {mode} with candidate {run}: "
                "give this one another --experiment name"
            )

    async def search(self, batcher: QueryBatcher, state: ServingState, request: SearchRequest) -> Answered:
        """Answer `request` as the experiment says (see the module): the run served, the candidate or both."""
        if not self.applies(state):
            return await plain(batcher, state, request)
        inside, coins = self.draw()
        if self.mode == "ab":
            answering = self.state if inside else state
            hits = await batcher.submit((answering.retriever, request))
            arm = CANDIDATE if inside else CURRENT
            return Answered(
                hits, answering.run_name, answering.info.system, answering.prompt_out, self, arm, None, state.run_name
            )
        if not inside:
            return await plain(batcher, state, request)
        ours, theirs = await asyncio.gather(
            batcher.submit((state.retriever, request)), batcher.submit((self.state.retriever, request))
        )
        mixed = team_draft([h.prompt.id for h in ours], [h.prompt.id for h in theirs], request.k, random.Random(coins))
        by_team = {
            CURRENT: ({h.prompt.id: h for h in ours}, state),
            CANDIDATE: ({h.prompt.id: h for h in theirs}, self.state),
        }
        hits, outs = [], {}
        for rank, (pid, team) in enumerate(zip(mixed.ids, mixed.teams, strict=True), 1):
            found, source = by_team[team]
            hit = found[pid]
            hits.append(Hit(hit.prompt, hit.score, rank))
            outs[pid] = source.prompt_out(hit.prompt)
        system = f"team-draft interleaving of {state.info.system} and {self.state.info.system}"[:MAX_SYSTEM_CHARS]
        return Answered(
            hits, state.run_name, system, lambda p: outs[p.id], self, INTERLEAVED, mixed.teams, state.run_name
        )


async def plain(batcher: QueryBatcher, state: ServingState, request: SearchRequest) -> Answered:
    """`request` answered by the run served, outside any experiment."""
    hits = await batcher.submit((state.retriever, request))
    return Answered(hits, state.run_name, state.info.system, state.prompt_out)


async def answer_search(
    experiment: Experiment | None,
    batcher: QueryBatcher,
    state: ServingState,
    request: SearchRequest,
    explorer: Explorer | None = None,
) -> Answered:
    """What the search route calls: `request` answered by the experiment if one runs, else as usual; a
    search outside the experiment is then explored as `explorer` says (one adjacent pair swapped, ranks
    following the new order; `feedback.explore`). An experiment's answers keep their order. An explorer
    with a depth (no experiment running) decides first and, for an explored search, asks for `depth` more
    results, one of which it shows in the lower half of the answer (`insert_from_below`)."""
    if experiment is None and explorer is not None and explorer.depth:
        move = explorer.from_below(request.k)
        if move is None:
            return await plain(batcher, state, request)
        deeper = await plain(batcher, state, replace(request, k=request.k + explorer.depth))
        below, at = move
        if request.k + below < len(deeper.hits):
            hits = insert_from_below(deeper.hits, request.k, below, at)
        else:  # fewer results than that below the page (a filter, a small corpus): the page as it is
            explorer.nothing_below()
            hits = deeper.hits[: request.k]
        return replace(deeper, hits=ranked(hits))
    if experiment is None:
        answered = await plain(batcher, state, request)
    else:
        answered = await experiment.search(batcher, state, request)
    if explorer is None or answered.experiment is not None:
        return answered
    return replace(answered, hits=ranked(explorer.order(answered.hits)))


def ranked(hits: list[Hit]) -> list[Hit]:
    """`hits` in the order given, their ranks renumbered 1, 2, ... to match it."""
    return [replace(h, rank=r) for r, h in enumerate(hits, 1)]


# ---------------------------------------------------------------------------------------------- offline numbers
def info_numbers(info: InfoOut) -> OfflineNumbers:
    """The numbers a served run was chosen on, as `/api/info` shows them."""
    return OfflineNumbers(info.run or "", info.system, info.kind, info.dev_ndcg10, info.test_ndcg10)


def run_numbers(run_dir: Path) -> OfflineNumbers:
    """The numbers the run `run_dir` was chosen on (its system.json, `read_system`), without loading it;
    the reason, when it cannot be read."""
    try:
        info = read_system(run_dir)
    except (PromptRetrieverError, OSError) as exc:
        return OfflineNumbers(run_dir.name, problem=str(exc))
    system = info.get("label") or system_label(info["kind"], info["model"])
    return OfflineNumbers(run_dir.name, system, info["kind"], info.get("dev_ndcg@10"), info.get("test_ndcg@10"))


def served_numbers(live: LiveState, experiment: Experiment | None) -> Callable[[str], OfflineNumbers]:
    """A run's numbers by name on a server: the run served's and the candidate's as /api/info has them,
    another run's from the runs folder of the run served."""

    def numbers(run: str) -> OfflineNumbers:
        states = [live.state] + ([experiment.state] if experiment is not None else [])
        for state in states:
            if state.run_name == run:
                return info_numbers(state.info)
        run_dir = live.state.retriever.__dict__.get("run_dir")
        if run_dir is None or not run:
            return OfflineNumbers(run, problem="not a run of the runs folder served")
        return run_numbers(Path(run_dir).resolve().parent / run)

    return numbers


# ---------------------------------------------------------------------------------------------- the route
class ExperimentsOut(BaseModel):
    running: str | None = Field(description="The experiment this server runs (null: none)")
    flushed: bool = Field(description="false: searches and events still queued for the store are not counted yet")
    experiments: list[dict] = Field(description="One report per experiment (`experiments report --json`)")


def add_experiment_routes(
    app: FastAPI, live: LiveState, recorder: FeedbackRecorder | None, experiment: Experiment | None
) -> None:
    """GET /api/experiments (with feedback on): the report of the experiments in the feedback store.
    An `experiment` needs `recorder` (InputError otherwise) and is checked against the store."""
    if experiment is not None:
        if recorder is None:
            raise InputError("an experiment needs the feedback log: give --feedback STORE")
        experiment.check_store(recorder)
    if recorder is None:
        return
    numbers = served_numbers(live, experiment)
    one_at_a_time = asyncio.Lock()  # a report reads the experiment's whole log: callers queue, threads do not

    async def flushed() -> bool:
        """Wait (on the event loop, no thread held) up to FLUSH_SECONDS for the queue to be written."""
        deadline = time.monotonic() + FLUSH_SECONDS
        while (pending := recorder.writer.pending()) is True and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return pending is False

    @app.get("/api/experiments", response_model=ExperimentsOut)
    async def experiments(
        experiment_name: str | None = Query(
            None, alias="experiment", max_length=MAX_NAME_CHARS, description="Only this experiment (default: all)"
        ),
    ) -> ExperimentsOut:
        async with one_at_a_time:
            written = await flushed()
            try:
                found = await run_in_threadpool(reports, recorder.store, experiment_name, numbers)
            except InputError as exc:
                raise ApiError(404, str(exc)) from None
            except Exception:  # noqa: BLE001 - the store is down: the client may retry later
                raise ApiError(503, "the feedback store is unavailable", {"Retry-After": "5"}) from None
        running = experiment.name if experiment is not None else None
        return ExperimentsOut(running=running, flushed=written, experiments=[r.to_dict() for r in found])
