"""A bounded load run against the local server: 50 concurrent clients for 30 s on 127.0.0.1 only.

Serves a 10k-prompt corpus (the bundled prompts, sixteen variants each), then reports requests/s,
p50/p99 latency, errors, and the server's resident memory at the start and end of the run.

    python benchmarks/bench_load.py [--clients 50] [--seconds 30] [--prompts 10000] [--backend torch]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import emit, percentile


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def make_corpus(n: int, path: Path) -> None:
    from prompt_retriever.corpus import Prompt, load_corpus, make_prompt_id, write_corpus

    base = load_corpus()
    out = []
    for i in range(n):
        p = base[i % len(base)]
        v = i // len(base)
        title = p.title if v == 0 else f"{p.title} (variant {v})"
        text = p.text if v == 0 else f"{p.text} Variant {v}: tell it from a new point of view."
        out.append(Prompt(make_prompt_id(p.genre, p.theme, title, text), p.genre, p.theme, title, text))
    write_corpus(out, path)


async def client(base: str, queries: list[str], until: float, lat: list[float], errors: list[str], seed: int):
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as c:
        while time.monotonic() < until:
            q = rng.choice(queries)
            t = time.perf_counter()
            try:
                r = await c.get("/api/search", params={"q": q, "k": 10})
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}")
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
                continue
            lat.append((time.perf_counter() - t) * 1000)


async def run_load(base: str, clients: int, seconds: float, pid: int) -> dict:
    from prompt_retriever.fileio import read_jsonl
    from prompt_retriever.golden import bundled_handwritten_path

    queries = [r["query"] for r in read_jsonl(bundled_handwritten_path())] + ["haunted lighthouse", "memoir about food"]
    lat: list[float] = []
    errors: list[str] = []
    mem_start = rss_mb(pid)
    t0 = time.monotonic()
    await asyncio.gather(*(client(base, queries, t0 + seconds, lat, errors, i) for i in range(clients)))
    elapsed = time.monotonic() - t0
    return {
        "requests": len(lat),
        "requests_per_second": round(len(lat) / elapsed, 1),
        "latency_ms_p50": round(percentile(lat, 50), 1),
        "latency_ms_p99": round(percentile(lat, 99), 1),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "rss_mb_start": mem_start,
        "rss_mb_end": rss_mb(pid),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--prompts", type=int, default=10000)
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    os.environ.setdefault("PROMPT_RETRIEVER_CACHE_DIR", str(work / "cache"))
    corpus = work / "corpus.jsonl"
    make_corpus(args.prompts, corpus)
    base = f"http://127.0.0.1:{args.port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prompt_retriever.cli",
            "serve",
            "--corpus",
            str(corpus),
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--backend",
            args.backend,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        t0 = time.monotonic()
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() - t0 > 900:
                raise SystemExit("server did not start")
            time.sleep(1)
        startup = time.monotonic() - t0
        asyncio.run(run_load(base, 4, 3, proc.pid))  # warm-up
        res = asyncio.run(run_load(base, args.clients, args.seconds, proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    emit(
        "bench_load",
        {
            "prompts": args.prompts,
            "clients": args.clients,
            "seconds": args.seconds,
            "backend": args.backend,
            "startup_seconds_incl_indexing": round(startup, 1),
            **res,
            "bar": "zero errors, p99 < 100 ms at 10k prompts, flat memory",
        },
    )


if __name__ == "__main__":
    main()
