"""A bounded load run against the local server: 50 concurrent clients for 30 s on 127.0.0.1 only.

Serves a 10k-prompt corpus (the bundled prompts, sixteen variants each), then reports requests/s,
p50/p99 latency, errors, and the server's resident memory after a warm-up and at the end of the run.
Clients are closed-loop (each sends its next search as soon as the last one is answered) and cycle
through 3,496 different queries (the hand-written set and every heuristic golden query).

The load comes from wrk (Debian package `wrk`, C, a second process) when it is installed: a Python
client would take most of one of the two cores from the server it measures. `--client python` uses
an httpx client instead.

    python benchmarks/bench_load.py [--clients 50] [--seconds 30] [--prompts 10000]
                                    [--backend onnx-int8] [--client wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
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


def load_queries() -> list[str]:
    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.fileio import read_jsonl
    from prompt_retriever.golden.goldenset import bundled_handwritten_path
    from prompt_retriever.golden.heuristic import generate_heuristic

    queries = [r["query"] for r in read_jsonl(bundled_handwritten_path())]
    queries += [q.text for q in generate_heuristic(load_corpus()).queries]
    random.Random(0).shuffle(queries)
    return queries


WRK_SCRIPT = """
paths = {%s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %%d, "us": %%d, "p50_us": %%d, "p99_us": %%d, "max_us": %%d, '
    .. '"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def run_wrk(base: str, clients: int, seconds: float, pid: int, queries: list[str], work: Path) -> dict:
    from urllib.parse import urlencode

    paths = ",\n".join(json.dumps("/api/search?" + urlencode({"q": q, "k": 10})) for q in queries)
    script = work / "load.lua"
    script.write_text(WRK_SCRIPT % paths)
    mem_start = rss_mb(pid)
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "10s", "-s", str(script), base]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    mem_end = rss_mb(pid)
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    r = json.loads(line[4:])
    errors = {k: r[k] for k in ("connect", "read", "write", "status", "timeout") if r[k]}
    return {
        "requests": r["requests"],
        "requests_per_second": round(r["requests"] / (r["us"] / 1e6), 1),
        "latency_ms_p50": round(r["p50_us"] / 1000, 1),
        "latency_ms_p99": round(r["p99_us"] / 1000, 1),
        "latency_ms_max": round(r["max_us"] / 1000, 1),
        "errors": sum(errors.values()),
        "error_kinds": sorted(errors),
        "rss_mb_start": mem_start,
        "rss_mb_end": mem_end,
    }


async def run_load(base: str, clients: int, seconds: float, pid: int, queries: list[str]) -> dict:
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
    ap.add_argument("--backend", default="onnx-int8", choices=["torch", "onnx", "onnx-int8"])
    ap.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    if args.client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --client python")
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
        queries = load_queries()
        if args.client == "wrk":
            run_wrk(base, args.clients, 5, proc.pid, queries, work)  # warm-up
            res = run_wrk(base, args.clients, args.seconds, proc.pid, queries, work)
        else:
            asyncio.run(run_load(base, args.clients, 5, proc.pid, queries))  # warm-up
            res = asyncio.run(run_load(base, args.clients, args.seconds, proc.pid, queries))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    emit(
        f"bench_load_{args.backend}",
        {
            "prompts": args.prompts,
            "clients": args.clients,
            "seconds": args.seconds,
            "backend": args.backend,
            "client": args.client,
            "distinct_queries": len(queries),
            "startup_seconds_incl_indexing": round(startup, 1),
            **res,
            "rss_growth_mb": round(res["rss_mb_end"] - res["rss_mb_start"], 1),
            "bar": "zero errors, p99 < 100 ms at 10k prompts, flat memory",
        },
    )


if __name__ == "__main__":
    main()
