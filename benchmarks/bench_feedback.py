"""The cost of the feedback log under load, and its drop counter: 50 closed-loop clients on 127.0.0.1.

Serves a 10k-prompt corpus (bench_load's, the bundled prompts sixteen variants each) with `--backend
onnx-int8`, in servers started one after another in this one invocation (so a shared, noisy machine slows
them alike), `--rounds` times each, the order reversed every other round:

- `off`: `serve --corpus C`;
- `on`: `serve --corpus C --feedback DB` (SQLite).

Against both, each client searches, then posts an `open` event on the first result (linked to the
answer's query_id), then searches again: the same load shape, so the difference is what the feedback log
costs (without feedback the event is answered 404: the route does not exist).

Reported per server: search requests/s and p50/p99 latency (searches only: the events' own latency apart),
errors, and for `on` whether every search and every accepted event reached the store after the server
stopped (zero lost below the queue's capacity) and the writer's counters from `/metrics`.

Then `over-capacity`: `serve --feedback DB --feedback-queue 200` with the SQLite file locked by another
writer (this script, `BEGIN EXCLUSIVE`) for the whole load, so the queue fills and every further record is
dropped: the drop counter must be exact (offered - dropped = what the store holds once the lock is
released and the server has stopped), and searches must go on being answered.

    python benchmarks/bench_feedback.py [--clients 50] [--seconds 20] [--rounds 2] [--prompts 10000]

Goes to `results/bench_feedback_<backend>.json`, with the CPU model and flags and the load average.
The client is Python (httpx, asyncio): wrk cannot read a query_id from one answer into the next request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import cpu_info, emit, percentile, wait_ready
from bench_load import load_queries, make_corpus, rss_mb


async def client(base: str, queries: list[str], until: float, events: bool, out: dict, seed: int) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as c:
        while time.monotonic() < until:
            t = time.perf_counter()
            try:
                r = await c.get("/api/search", params={"q": rng.choice(queries), "k": 10})
            except httpx.HTTPError as exc:
                out["errors"].append(type(exc).__name__)
                continue
            if r.status_code != 200:
                out["errors"].append(f"search HTTP {r.status_code}")
                continue
            out["search_ms"].append((time.perf_counter() - t) * 1000)
            answer = r.json()
            if not answer["results"]:
                continue
            body = {
                "action_name": "open",
                "query_id": answer["query_id"],
                "client_id": f"bench-client-{seed:04d}",
                "event_attributes": {
                    "object": {"object_id": answer["results"][0]["prompt"]["id"]},
                    "position": {"ordinal": 1},
                },
            }
            t = time.perf_counter()
            try:
                e = await c.post("/api/events", json=body)
            except httpx.HTTPError as exc:
                out["errors"].append("event " + type(exc).__name__)
                continue
            out["event_ms"].append((time.perf_counter() - t) * 1000)
            if not events:
                if e.status_code != 404:
                    out["errors"].append(f"event HTTP {e.status_code} (feedback off)")
            elif e.status_code == 422 and "unknown query_id" in e.text:
                out["refused_dropped_query"] += 1  # the search's own record was dropped (queue full): not an error
            elif e.status_code != 202:
                out["errors"].append(f"event HTTP {e.status_code}")
            else:
                out[e.json()["status"]] += 1


async def load(base: str, clients: int, seconds: float, events: bool, queries: list[str]) -> dict:
    out: dict = {"search_ms": [], "event_ms": [], "errors": [], "queued": 0, "dropped": 0, "refused_dropped_query": 0}
    t0 = time.monotonic()
    await asyncio.gather(*(client(base, queries, t0 + seconds, events, out, i) for i in range(clients)))
    out["elapsed"] = time.monotonic() - t0
    return out


def scrape(base: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(base + "/metrics", timeout=10).text
    return {
        s.name.removeprefix("prompt_retriever_feedback_records_"): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("prompt_retriever_feedback_records_")
    }


def stored(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        return (
            conn.execute("SELECT count(*) FROM ubi_queries").fetchone()[0],
            conn.execute("SELECT count(*) FROM ubi_events").fetchone()[0],
        )


def measure(label: str, args, corpus: Path, queries: list[str], work: Path, extra: list[str], lock: bool = False):
    """Start a server, warm it up 5 s, load it `args.seconds`, stop it (SIGTERM: the queue is written)."""
    base = f"http://127.0.0.1:{args.port}"
    db = work / f"{label}-{time.monotonic_ns()}.db"
    # every client is on 127.0.0.1: the per-address event limit is lifted, or it would measure the limit
    feedback = [] if label == "off" else ["--feedback", str(db), "--feedback-rate", "100000", *extra]
    cmd = ["serve", "--corpus", str(corpus), "--backend", args.backend, "--port", str(args.port), *feedback]
    log = work / f"server-{label}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "prompt_retriever.cli", *cmd], stdout=fh, stderr=fh)
    locker = None
    try:
        startup = wait_ready(base, proc, log)
        warm = asyncio.run(load(base, args.clients, 5, label != "off", queries))  # warm-up (its events kept)
        if lock:
            locker = sqlite3.connect(db, isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")  # another writer holds the store: the server's writer waits
        load_before, rss_start = os.getloadavg()[0], rss_mb(proc.pid)
        res = asyncio.run(load(base, args.clients, args.seconds, label != "off", queries))
        load_after, rss_end = os.getloadavg()[0], rss_mb(proc.pid)
        counters = scrape(base) if label != "off" else {}
        if locker is not None:
            locker.execute("ROLLBACK")
            locker.close()
            locker = None
    finally:
        if locker is not None:
            locker.close()
        proc.terminate()
        proc.wait(timeout=60)
    row = {
        "label": label,
        "command": "prompt-retriever " + " ".join(cmd),
        "startup_seconds": round(startup, 1),
        "searches": len(res["search_ms"]),
        "searches_per_second": round(len(res["search_ms"]) / res["elapsed"], 1),
        "search_ms_p50": round(percentile(res["search_ms"], 50), 1),
        "search_ms_p99": round(percentile(res["search_ms"], 99), 1),
        "errors": len(res["errors"]),
        "error_kinds": sorted(set(res["errors"]))[:5],
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(load_after, 2),
    }
    if label != "off":
        queries_stored, events_stored = stored(db)
        row |= {
            "events": len(res["event_ms"]),
            "event_ms_p50": round(percentile(res["event_ms"], 50), 1) if res["event_ms"] else None,
            "event_ms_p99": round(percentile(res["event_ms"], 99), 1) if res["event_ms"] else None,
            "events_answered_queued": res["queued"],
            "events_answered_dropped": res["dropped"],
            "events_refused_search_dropped": res["refused_dropped_query"],
            "writer": counters,
            "stored_queries": queries_stored,
            "stored_events": events_stored,
            # every record offered is in the store or counted dropped (the server stopped: queue written)
            "counter_exact": queries_stored + events_stored + counters.get("dropped_total", 0)
            == counters.get("offered_total", -1)
            and counters.get("failed_total", 0) == 0,
            "events_lost": warm["queued"] + res["queued"] - events_stored,  # answered queued, not in the store
        }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=10000)
    ap.add_argument("--backend", default="onnx-int8", choices=["torch", "onnx", "onnx-int8"])
    ap.add_argument("--port", type=int, default=8766)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    os.environ.setdefault("PROMPT_RETRIEVER_CACHE_DIR", str(work / "cache"))
    corpus = work / "corpus.jsonl"
    make_corpus(args.prompts, corpus)
    queries = load_queries()
    rows = []
    for i in range(args.rounds):
        for label in ("off", "on") if i % 2 == 0 else ("on", "off"):
            row = measure(label, args, corpus, queries, work, [])
            row["round"] = i + 1
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    over = measure("over-capacity", args, corpus, queries, work, ["--feedback-queue", "200"], lock=True)
    print(json.dumps(over), file=sys.stderr)
    p99 = {label: statistics.median(r["search_ms_p99"] for r in rows if r["label"] == label) for label in ("off", "on")}
    on = [r for r in rows if r["label"] == "on"]
    emit(
        f"bench_feedback_{args.backend}",
        {
            "prompts": args.prompts,
            "clients": args.clients,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "backend": args.backend,
            "client": "python (httpx, asyncio)",
            "search_p99_ms_median": p99,
            "search_p99_on_vs_off": round(p99["on"] / p99["off"], 3),
            "events_lost_below_capacity": sum(r["events_lost"] for r in on),
            "dropped_below_capacity": sum(r["writer"].get("dropped_total", 0) for r in on),
            "over_capacity": {
                k: over[k] for k in ("searches", "search_ms_p99", "errors", "writer", "stored_queries", "stored_events")
            }
            | {"counter_exact": over["counter_exact"]},
            "measurements": [*rows, over],
            "cpu": cpu_info(),
            "bar": "search p99 with feedback within 10% of without (same run); zero lost events below the "
            "queue's capacity; the drop counter exact above it",
        },
    )


if __name__ == "__main__":
    main()
