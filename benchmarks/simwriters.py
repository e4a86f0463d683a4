"""Simulated writers for the feedback benchmarks: query sources with hidden true judgments, a
position-based click model, and sessions played through a real server's HTTP API.

A session: one writer types one query (`GET /api/search?q=&k=`), looks down the answer and, per result
at rank r, examines it with probability `1 / r**eta`; an examined result is opened (`open`, the click)
with probability `click[grade]` by its TRUE grade (0, 1, 2), where with probability `noise` the writer
misjudges it (a grade drawn uniformly instead of the true one); after an open, it is copied with
probability `copy[grade]` and "used" with probability `use[grade]` (explicit votes off by default). The
true grades are known to the simulator only: the server and whatever reads its log see the queries, the
answers and the events, nothing else. Every draw comes from `random.Random(f"{seed}:{session}")`, so a
session's query and clicks depend on the seed and its number only (not on timing or concurrency), given
the answers the server gives. With `ClickModel.reformulate`, a writer who copied or used nothing may type
another request for the same need (another query written for the same source prompt) in the same session
(same client id), as writers who do not find what they want do; 0 (the default) keeps one search a session.
With `ClickModel.switch`, a writer done with one need goes on to another, unrelated one in the same session.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from _common import wait_ready
from bench_feedback import scrape


@dataclass(frozen=True)
class SimQuery:
    text: str
    truth: dict[str, int]  # prompt id -> true grade (1 or 2); absent: 0
    source: str  # natural_judged | natural | handwritten
    prompt_id: str | None = None  # the natural query's source prompt


@dataclass(frozen=True)
class ClickModel:
    """A position-based click model (examination by rank, click by true grade) with copy/use after a click."""

    eta: float = 1.0  # examination probability 1 / rank**eta
    click: tuple[float, float, float] = (0.05, 0.4, 0.8)  # P(open | examined, grade 0, 1, 2)
    copy: tuple[float, float, float] = (0.05, 0.3, 0.6)  # P(copy | opened, grade)
    use: tuple[float, float, float] = (0.0, 0.1, 0.3)  # P(use | opened, grade)
    thumbs_up: tuple[float, float, float] = (0.0, 0.0, 0.0)  # P(thumbs_up | opened, grade)
    thumbs_down: tuple[float, float, float] = (0.0, 0.0, 0.0)  # P(thumbs_down | opened, grade)
    noise: float = 0.05  # P(the writer judges an examined result by a random grade instead of its true one)
    # P(the writer, having copied or used nothing, types another request for the same need: another natural
    # query of the same source prompt, not typed yet in this session), up to `searches` searches a session
    reformulate: float = 0.0
    searches: int = 3
    # P(the writer, done with one need (found or given up), searches for another, drawn like the first, in the
    # same session): what makes a query chain wrong (a search given up on, then an unrelated one satisfied)
    switch: float = 0.0

    def examine(self, rank: int) -> float:
        return 1.0 / rank**self.eta

    def to_dict(self) -> dict:
        return asdict(self)


def session_rng(seed: int, session: int) -> random.Random:
    return random.Random(f"{seed}:{session}")


def simulate_clicks(
    ids: Sequence[str], truth: dict[str, int], model: ClickModel, rng: random.Random
) -> list[tuple[str, str, int]]:
    """The events of one writer on one answer: (action_name, prompt id, 1-based position), in order."""
    events: list[tuple[str, str, int]] = []
    for pos, pid in enumerate(ids, 1):
        examined = rng.random() < model.examine(pos)
        misjudge = rng.random() < model.noise
        random_grade = rng.randrange(3)
        draws = [rng.random() for _ in range(5)]  # drawn whether used or not: the stream stays aligned
        if not examined:
            continue
        grade = random_grade if misjudge else truth.get(pid, 0)
        if draws[0] >= model.click[grade]:
            continue
        events.append(("open", pid, pos))
        for action, table, u in (
            ("copy", model.copy, draws[1]),
            ("use", model.use, draws[2]),
            ("thumbs_up", model.thumbs_up, draws[3]),
            ("thumbs_down", model.thumbs_down, draws[4]),
        ):
            if u < table[grade]:
                events.append((action, pid, pos))
    return events


# ---------------------------------------------------------------------------------------------- queries


def bundled_prompts():
    from prompt_retriever.corpus import bundled_corpus_paths, load_corpus

    return load_corpus(bundled_corpus_paths())


def natural_rows():
    from prompt_retriever.golden.natural import bundled_natural_path, read_natural_queries

    return read_natural_queries(bundled_natural_path())


def judged_queries(prompts, *, handwritten: bool = True) -> list[SimQuery]:
    """The fully judged queries over `prompts`: the bundled natural queries judged against the whole
    corpus (relevance restricted to `prompts`) and the hand-written queries (relevant by title)."""
    ids = {p.id for p in prompts}
    out = []
    for q in natural_rows():
        if q.relevant and q.prompt_id in ids:
            truth = {p: g for p, g in q.relevant.items() if p in ids}
            out.append(SimQuery(q.text, truth, "natural_judged", q.prompt_id))
    if handwritten:
        from prompt_retriever.fileread import read_jsonl
        from prompt_retriever.golden.goldenset import bundled_handwritten_path

        by_title = {p.title.casefold(): p.id for p in prompts}
        for row in read_jsonl(bundled_handwritten_path()):
            truth = {by_title[t.casefold()]: g for t, g in row["relevant"].items() if t.casefold() in by_title}
            if truth:
                out.append(SimQuery(" ".join(row["query"].split()), truth, "handwritten"))
    return out


def natural_queries_of(source_ids: set[str], corpus_ids: set[str]) -> list[SimQuery]:
    """Every bundled natural query whose source prompt is in `source_ids`: judged ones with their
    judgments restricted to `corpus_ids`, the others with their source prompt as the one relevant (2)."""
    out = []
    for q in natural_rows():
        if q.prompt_id not in source_ids:
            continue
        if q.relevant:
            out.append(SimQuery(q.text, {p: g for p, g in q.relevant.items() if p in corpus_ids}, q.kind, q.prompt_id))
        else:
            out.append(SimQuery(q.text, {q.prompt_id: 2}, q.kind, q.prompt_id))
    return out


def ndcg10(ids: Sequence[str], truth: dict[str, int]) -> float:
    """NDCG@10 as the project measures it (prompt_retriever.evaluation.metrics.ndcg: linear gain)."""
    from prompt_retriever.evaluation.metrics import ndcg

    return ndcg(list(ids), truth, 10)


# ---------------------------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(serve_args: list[str], log: Path, *, nice: int = 0) -> Iterator[str]:
    """`prompt-retriever serve SERVE_ARGS` on a free 127.0.0.1 port, until ready; yields its base URL and
    stops it (SIGTERM: the feedback queue is written before it exits) on leaving."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "prompt_retriever.cli", "serve", *serve_args]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=fh)
    try:
        wait_ready(base, proc, log, " ".join(serve_args))
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_written(base: str, timeout: float = 120.0) -> dict[str, float]:
    """Wait until the server's feedback queue is empty and every record offered is written (or counted)."""
    t0 = time.monotonic()
    while True:
        c = scrape(base)  # the feedback writer's counts from /metrics
        done = c.get("written_total", 0) + c.get("dropped_total", 0) + c.get("failed_total", 0)
        if c.get("queued", 0) == 0 and done >= c.get("offered_total", 0):
            return c
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"feedback queue not written within {timeout} s: {c}")
        time.sleep(0.3)


def snapshot(db: Path, to: Path) -> Path:
    """A consistent copy of a SQLite feedback store (the backup API: safe while the server writes)."""
    to.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(db)) as src, contextlib.closing(sqlite3.connect(to)) as dst:
        src.backup(dst)
    return to


# ---------------------------------------------------------------------------------------------- sessions


@dataclass
class SessionLog:
    """What a batch of sessions did: counts, and per session the ids shown and the positions opened."""

    searches: int = 0
    events: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)  # HTTP status of refused events
    errors: list[str] = field(default_factory=list)
    # session number -> (query, the ids shown, the positions opened)
    shown: dict[int, tuple[str, tuple[str, ...], tuple[int, ...]]] = field(default_factory=dict)
    seconds: float = 0.0
    reformulated: int = 0  # searches typed after a first one, for the same need
    switched: int = 0  # sessions that went on to a second need

    def summary(self) -> dict:
        return {
            "searches": self.searches,
            "reformulated": self.reformulated,
            "switched": self.switched,
            "events": dict(sorted(self.events.items())),
            "events_refused": dict(self.refused),
            "errors": len(self.errors),
            "error_kinds": sorted(set(self.errors))[:5],
            "seconds": round(self.seconds, 1),
        }


async def _search(c: httpx.AsyncClient, text: str, k: int, client_id: str, log: SessionLog) -> dict | None:
    for attempt in range(5):
        try:
            r = await c.get("/api/search", params={"q": text, "k": k}, headers={"X-Client-Id": client_id})
            break
        except httpx.HTTPError as exc:
            if attempt == 4:
                log.errors.append("search " + type(exc).__name__)
                return None
            await asyncio.sleep(0.5)
    if r.status_code != 200:
        log.errors.append(f"search HTTP {r.status_code}")
        return None
    log.searches += 1
    return r.json()


async def _session(
    c: httpx.AsyncClient,
    i: int,
    queries: Sequence[SimQuery],
    seed: int,
    model: ClickModel,
    k: int,
    log: SessionLog,
    same_need: dict[str, list[SimQuery]],
) -> None:
    rng = session_rng(seed, i)
    q = queries[rng.randrange(len(queries))]
    client_id = f"sim-{seed}-{i:07d}"
    if not await _need(c, i, q, model, k, log, same_need, rng, client_id):
        return
    if model.switch and rng.random() < model.switch:  # on to something else, as the same writer
        log.switched += 1
        await _need(c, i, queries[rng.randrange(len(queries))], model, k, log, same_need, rng, client_id)


async def _need(
    c: httpx.AsyncClient,
    i: int,
    q: SimQuery,
    model: ClickModel,
    k: int,
    log: SessionLog,
    same_need: dict[str, list[SimQuery]],
    rng: random.Random,
    client_id: str,
) -> bool:
    """One need of a session: `q`, then rephrasings while nothing is copied or used; False on an error."""
    typed = [q.text]
    while True:
        answer = await _search(c, q.text, k, client_id, log)
        if answer is None:
            return False
        ids = tuple(h["prompt"]["id"] for h in answer["results"])
        events = simulate_clicks(ids, q.truth, model, rng)
        log.shown.setdefault(i, (q.text, ids, tuple(pos for a, _, pos in events if a == "open")))
        await _send_events(c, answer["query_id"], client_id, events, log)
        if any(a in ("copy", "use") for a, _, _ in events) or len(typed) >= model.searches or not model.reformulate:
            return True
        others = [o for o in same_need.get(q.prompt_id or "", []) if o.text not in typed]
        if not others or rng.random() >= model.reformulate:
            return True
        q = others[rng.randrange(len(others))]
        typed.append(q.text)
        log.reformulated += 1


async def _send_events(
    c: httpx.AsyncClient, query_id: str, client_id: str, events: list[tuple[str, str, int]], log: SessionLog
) -> None:
    for action, pid, pos in events:
        body = {
            "action_name": action,
            "query_id": query_id,
            "client_id": client_id,
            "event_attributes": {"object": {"object_id": pid}, "position": {"ordinal": pos}},
        }
        try:
            e = await c.post("/api/events", json=body)
        except httpx.HTTPError as exc:
            log.errors.append("event " + type(exc).__name__)
            continue
        if e.status_code == 202:
            log.events[action] += 1
        else:
            log.refused[e.status_code] += 1


async def _sessions(bases, start, stop, queries, seed, model, k, concurrency, log) -> None:
    limits = httpx.Limits(max_connections=concurrency)
    clients = [httpx.AsyncClient(base_url=b, timeout=60.0, limits=limits) for b in bases]
    try:
        todo = iter(range(start, stop))
        same_need: dict[str, list[SimQuery]] = {}
        for q in queries:
            if q.prompt_id:
                same_need.setdefault(q.prompt_id, []).append(q)

        async def worker() -> None:
            for i in todo:  # session i goes to server i mod len(bases): a writer of that version of the site
                await _session(clients[i % len(clients)], i, queries, seed, model, k, log, same_need)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        for c in clients:
            await c.aclose()


def run_sessions(
    bases: str | Sequence[str],
    queries: Sequence[SimQuery],
    start: int,
    stop: int,
    *,
    seed: int,
    model: ClickModel = ClickModel(),
    k: int = 10,
    concurrency: int = 4,
    log: SessionLog | None = None,
) -> SessionLog:
    """Sessions `start` .. `stop - 1` (each seeded by (seed, its number)) against the server at `bases`,
    or, given several, session i against `bases[i % len(bases)]`."""
    log = log if log is not None else SessionLog()
    bases = [bases] if isinstance(bases, str) else list(bases)
    t0 = time.perf_counter()
    asyncio.run(_sessions(bases, start, stop, queries, seed, model, k, concurrency, log))
    log.seconds += time.perf_counter() - t0
    return log
