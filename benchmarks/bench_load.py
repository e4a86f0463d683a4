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
    python benchmarks/bench_load.py --run DIR [--rounds 1] [...]

`--run DIR` measures the system a pipeline run chose (DIR/system.json: kind, model, alpha, k_rrf, depth,
template) under the same load, in three servers started one after another in the same invocation, so
that a shared, noisy machine slows them alike:

- `dense-base-10000`: the dense base model on the 10k corpus, exactly what the plain bench serves today
  (`serve --corpus <10k> --backend B`): the baseline of the ratios;
- `run-system-10000`: the run's system on the 10k corpus: an index folder built here with
  `PromptRetriever(<run model>, system=<run's SystemSpec>, template=..., backend=B).index(...).save()`,
  so its manifest carries the run's system (alpha included), then `serve --index THAT --backend B`;
- `run-own-corpus`: `serve --run DIR --backend B`, the run's own index and corpus, as deployed.

`--rounds N` repeats the three, reversing the order every other round. The result records the CPU model
and SIMD flags and the load average around each measurement, and goes to
`results/bench_load_run_<backend>.json`.

    python benchmarks/bench_load.py --feedback [--clients 50] [--seconds 20] [--rounds 2]

`--feedback` runs benchmarks/bench_feedback.py (each search followed by an event, feedback off against on
in one invocation, zero lost events below the queue's capacity, the drop counter above it; see there).

    python benchmarks/bench_load.py --attack [--seconds 15] [--clients 8] [--event-loop asyncio] [...]

`--attack` measures the same load twice on one server, first alone and then while hostile clients run
from other loopback addresses (127.0.0.2-9, so the server's per-address caps apply to them, not to the
wrk clients on 127.0.0.1): 200 idle sockets kept open (reopened as the server closes them), 200 slowloris
connections sending one header line a second, 1 MB request heads in a loop, and HTTP pipelining: one
connection sending `GET /healthz` back to back while reading at most 4 KB every 50 ms (reconnecting when
closed), and every 2 s `--pipelined` connections (100) each sending one 259 KB burst of pipelined
requests (7,000 each) and then reading the answers. Throughout, a separate well-behaved client (its own
process, raw sockets, so that neither the attackers' threads nor an HTTP library's set-up time count)
sends every 50 ms a GET /healthz on a fresh connection (a new visitor: the accept path included) and a
search on its own keep-alive connection. The bar: that client's /healthz and search p99 < 100 ms under
attack, and the wrk clients' search p99 too. `--clients` sizes the wrk load: on a 2-core machine 50
closed-loop clients queue behind each other (their p99 alone is their number over the requests/s), so
size it to what the machine answers under 100 ms alone (8 on an avx2-only 2-core EPYC). Reported: the
wrk clients' and the separate client's p50/p99 and errors in both phases, what the server did to the
attackers (idle sockets closed, slowloris answered 408 after how long, giant heads answered 431 or
reset, how many pipelined requests each connection got answered before the server closed it), and the
server's memory before, at the end of and 5 s after the attack (`--pipelined 0` leaves the pipelining
attack out, as the runs before it had). `--event-loop` is passed to `serve`. Goes to
`results/bench_load_attack_<backend>[_<loop>].json` (no suffix for the default loop).
`--same-address` runs the attackers from 127.0.0.1 too, as a simple reproduction does (the per-address
cap cannot tell them from the wrk clients and the prober); it goes to
`results/bench_load_attack_same_<backend>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import cpu_info, emit, percentile, wait_ready


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
    from prompt_retriever.fileread import read_jsonl
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


def measure(label: str, serve_args: list[str], args, queries: list[str], work: Path, port: int) -> dict:
    """Start `prompt-retriever serve SERVE_ARGS` on 127.0.0.1:port, warm it up for 5 s, load it for
    args.seconds, stop it. Returns the load numbers, the server's own /api/info and the load average."""
    base = f"http://127.0.0.1:{port}"
    cmd = [*serve_args, "--host", "127.0.0.1", "--port", str(port), "--backend", args.backend]
    log = work / f"server-{label}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "prompt_retriever.cli", "serve", *cmd], stdout=fh, stderr=fh)
    try:
        startup = wait_ready(base, proc, log)
        served = httpx.get(base + "/api/info", timeout=10).json()
        load_before = os.getloadavg()[0]
        if args.client == "wrk":
            run_wrk(base, args.clients, 5, proc.pid, queries, work)  # warm-up
            res = run_wrk(base, args.clients, args.seconds, proc.pid, queries, work)
        else:
            asyncio.run(run_load(base, args.clients, 5, proc.pid, queries))  # warm-up
            res = asyncio.run(run_load(base, args.clients, args.seconds, proc.pid, queries))
        load_after = os.getloadavg()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return {
        "label": label,
        "command": "prompt-retriever serve " + " ".join(cmd),
        "served": {k: served.get(k) for k in ("system", "kind", "model", "backend", "prompts")},
        "startup_seconds": round(startup, 1),
        **res,
        "rss_growth_mb": round(res["rss_mb_end"] - res["rss_mb_start"], 1),
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(load_after, 2),
    }


def _request(sock: socket.socket, path: str) -> bytes:
    """Send one GET on `sock` and read its whole answer (Content-Length framed); raises on a close."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(x.split(b":")[1]) for x in head.lower().split(b"\r\n") if x.startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of the answer")
        body += chunk
    return head.split(b"\r\n", 1)[0]


def probe_loop(port: int, every: float, paths: list[str], stop, out) -> None:
    """The separate client (its own process, so no attacker thread shares its interpreter): every `every`
    seconds, GET /healthz on a fresh connection (a new visitor: the accept path included), then one
    search on its own keep-alive connection (reopened if the server closes it). Puts {"healthz": [...],
    "search": [...], "errors": [...]} (latencies in ms) on `out` when `stop` is set."""
    lat: dict[str, list[float]] = {"healthz": [], "search": []}
    errors: list[str] = []
    keep: socket.socket | None = None
    i = 0
    while not stop.is_set():
        for kind in ("healthz", "search"):
            t = time.perf_counter()
            try:
                if kind == "healthz":
                    with socket.create_connection(("127.0.0.1", port), timeout=10.0) as s:
                        status = _request(s, "/healthz")
                else:
                    if keep is None:
                        keep = socket.create_connection(("127.0.0.1", port), timeout=10.0)
                    status = _request(keep, paths[i % len(paths)])
                    i += 1
            except OSError as exc:
                errors.append(f"{kind}: {type(exc).__name__}")
                if kind == "search" and keep is not None:
                    keep.close()
                    keep = None
                continue
            if b" 200 " not in status + b" ":
                errors.append(f"{kind}: {status.decode(errors='replace')}")
            else:
                lat[kind].append((time.perf_counter() - t) * 1000)
        stop.wait(every)
    out.put({**lat, "errors": errors})


def _latency(lat: list[float], errors: list[str]) -> dict:
    return {
        "requests": len(lat),
        "latency_ms_p50": round(percentile(lat, 50), 1) if lat else None,
        "latency_ms_p99": round(percentile(lat, 99), 1) if lat else None,
        "latency_ms_max": round(max(lat), 1) if lat else None,
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
    }


class Prober:
    """`probe_loop` in a process of its own (spawned): a separate, well-behaved client's /healthz (fresh
    connection) and search (keep-alive) latencies, every `every` seconds until `stop()`."""

    def __init__(self, port: int, queries: list[str], every: float = 0.05):
        import multiprocessing
        from urllib.parse import urlencode

        ctx = multiprocessing.get_context("spawn")
        paths = ["/api/search?" + urlencode({"q": q, "k": 10}) for q in queries[::7][:500]]
        self._stop, self._out = ctx.Event(), ctx.Queue()
        self._proc = ctx.Process(target=probe_loop, args=(port, every, paths, self._stop, self._out), daemon=True)

    def start(self) -> None:
        self._proc.start()

    def stop(self) -> dict:
        """Stop probing: {"healthz": ..., "search": ...}, each with p50/p99/max and errors by kind."""
        self._stop.set()
        res = self._out.get(timeout=60)
        self._proc.join(timeout=10)
        kinds = ("healthz", "search")
        return {kind: _latency(res[kind], [e for e in res["errors"] if e.startswith(kind)]) for kind in kinds}


class Attack:
    """Idle sockets, slowloris and giant request heads from 127.0.0.2-7 (`same_address`: from 127.0.0.1, the
    address of the well-behaved clients too, so per-address caps cannot tell them apart), in threads,
    until `stop`."""

    def __init__(
        self,
        port: int,
        idle: int = 200,
        slow: int = 20,
        giant_bytes: int = 1 << 20,
        same_address: bool = False,
        pipelined: int = 100,
    ):
        self.port, self.idle, self.slow, self.giant_bytes = port, idle, slow, giant_bytes
        self.same_address, self.pipelined = same_address, pipelined
        self.stop = threading.Event()
        self.counts = {"idle_opened": 0, "idle_closed_by_server": 0, "slowloris_408": 0, "slowloris_closed": 0,
                       "giant_431": 0, "giant_reset": 0, "giant_other": 0,
                       "flood_connections": 0, "flood_closed_by_server": 0, "flood_answers": 0,
                       "burst_rounds": 0, "burst_connections": 0, "burst_closed_by_server": 0,
                       "burst_answers": 0}  # fmt: skip
        self.flood_answers_per_connection: list[int] = []
        self.burst_answers_per_connection: list[int] = []
        self.slow_seconds: list[float] = []
        self.threads = [threading.Thread(target=self._idle, daemon=True)]
        self.threads += [threading.Thread(target=self._slowloris, daemon=True) for _ in range(slow)]
        self.threads += [threading.Thread(target=self._giant, daemon=True)]
        if pipelined:
            self.threads += [threading.Thread(target=self._flood, daemon=True)]
            self.threads += [threading.Thread(target=self._bursts, daemon=True)]

    def connect(self, source: str) -> socket.socket:
        source = "127.0.0.1" if self.same_address else source
        return socket.create_connection(("127.0.0.1", self.port), timeout=5, source_address=(source, 0))

    def _idle(self) -> None:
        socks: list[socket.socket] = []
        n = 0
        while not self.stop.is_set():
            while len(socks) < self.idle:
                try:
                    socks.append(self.connect(f"127.0.0.{2 + n % 4}"))  # 4 addresses, 50 each
                    self.counts["idle_opened"] += 1
                except OSError:
                    break
                n += 1
            alive = []
            for s in socks:  # closed by the server? (readable with nothing, or a refusal)
                s.setblocking(False)
                try:
                    s.recv(4096)  # b"" (closed) or a refusal (429) followed by the close
                except BlockingIOError:
                    alive.append(s)
                    continue
                except OSError:
                    pass
                self.counts["idle_closed_by_server"] += 1
                s.close()
            socks = alive
            self.stop.wait(0.5)
        for s in socks:
            s.close()

    def _slowloris(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                with self.connect("127.0.0.6") as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    i = 0
                    s.settimeout(1.0)
                    while not self.stop.is_set():
                        try:
                            data = s.recv(4096)
                        except TimeoutError:
                            s.sendall(b"X-Drip-%d: a\r\n" % i)
                            i += 1
                            continue
                        self.counts["slowloris_408" if data.startswith(b"HTTP/1.1 408") else "slowloris_closed"] += 1
                        self.slow_seconds.append(time.monotonic() - t0)
                        break
            except OSError:
                self.counts["slowloris_closed"] += 1
                self.slow_seconds.append(time.monotonic() - t0)

    def _giant(self) -> None:
        chunk = b"g" * 65536
        while not self.stop.is_set():
            try:
                with self.connect("127.0.0.7") as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nX-Giant: ")
                    for _ in range(self.giant_bytes // len(chunk)):
                        s.sendall(chunk)
                    s.sendall(b"\r\n\r\n")
                    data = s.recv(4096)
                key = "giant_431" if data.startswith(b"HTTP/1.1 431") else "giant_other"
            except OSError:
                key = "giant_reset"  # cut off while still sending
            self.counts[key] += 1
            self.stop.wait(0.2)

    HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

    def _flood(self) -> None:
        """One connection sending `GET /healthz` back to back, reading at most 4 KB every 50 ms; a new one
        when the server closes it."""
        burst = self.HEALTHZ * 1000
        while not self.stop.is_set():
            answers, closed, last_read = 0, False, 0.0
            try:
                with self.connect("127.0.0.8") as s:
                    self.counts["flood_connections"] += 1
                    s.setblocking(False)
                    while not self.stop.is_set() and not closed:
                        with contextlib.suppress(BlockingIOError):
                            s.send(burst)
                        if time.monotonic() - last_read >= 0.05:
                            last_read = time.monotonic()
                            try:
                                chunk = s.recv(4096)
                                answers += chunk.count(b"HTTP/1.1 ")
                                closed = not chunk
                            except BlockingIOError:
                                pass
                        time.sleep(0.005)
            except OSError:
                closed = True  # reset, or the send side found it closed
            self.counts["flood_closed_by_server"] += closed
            self.counts["flood_answers"] += answers
            self.flood_answers_per_connection.append(answers)

    def _bursts(self) -> None:
        """Every 2 s, `pipelined` connections each send one 259 KB burst of pipelined requests, then read
        the answers until the server closes them."""
        burst = self.HEALTHZ * 7000
        while not self.stop.is_set():
            t0 = time.monotonic()
            socks = []
            for _ in range(self.pipelined):
                try:
                    s = self.connect("127.0.0.9")
                    s.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        s.send(burst)  # as much as the kernel takes at once
                    socks.append(s)
                except OSError:
                    pass
            self.counts["burst_rounds"] += 1
            self.counts["burst_connections"] += len(socks)
            end = time.monotonic() + 10.0
            for s in socks:
                data, closed = b"", False
                s.setblocking(True)
                while time.monotonic() < end:
                    s.settimeout(max(0.01, end - time.monotonic()))
                    try:
                        chunk = s.recv(65536)
                    except TimeoutError:
                        break
                    except OSError:
                        closed = True
                        break
                    if not chunk:
                        closed = True
                        break
                    data += chunk
                s.close()
                n = data.count(b"HTTP/1.1 ")
                self.counts["burst_closed_by_server"] += closed
                self.counts["burst_answers"] += n
                self.burst_answers_per_connection.append(n)
            self.stop.wait(max(0.0, t0 + 2.0 - time.monotonic()))

    def __enter__(self) -> Attack:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)

    def result(self) -> dict:
        slow = sorted(self.slow_seconds)
        return {
            "idle_sockets": self.idle,
            "slowloris_connections": self.slow,
            "giant_head_bytes": self.giant_bytes,
            "attack_from": "127.0.0.1 (same as the clients)" if self.same_address else "127.0.0.2-9",
            "pipelined_burst_connections": self.pipelined,
            **self.counts,
            "slowloris_seconds_to_close_median": round(statistics.median(slow), 1) if slow else None,
            "flood_answers_per_connection_max": max(self.flood_answers_per_connection, default=None),
            "burst_answers_per_connection_max": max(self.burst_answers_per_connection, default=None),
        }


def measure_attack(args, queries: list[str], work: Path, corpus: Path) -> dict:
    """One server: warm-up, the load alone, then the load under `Attack`; a /healthz prober throughout."""
    port = args.port
    base = f"http://127.0.0.1:{port}"
    cmd = ["--corpus", str(corpus), "--host", "127.0.0.1", "--port", str(port), "--backend", args.backend]
    cmd += ["--event-loop", args.event_loop]
    log = work / "server-attack.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "prompt_retriever.cli", "serve", *cmd], stdout=fh, stderr=fh)
    phases = {}
    try:
        wait_ready(base, proc, log)
        run_wrk(base, args.clients, 5, proc.pid, queries, work)  # warm-up
        for phase in ("alone", "under_attack"):
            prober = Prober(port, queries)
            prober.start()
            attack = None
            if phase == "under_attack":
                attack = Attack(
                    port,
                    idle=args.idle,
                    slow=args.slowloris,
                    same_address=args.same_address,
                    pipelined=args.pipelined,
                )
            rss_before = rss_mb(proc.pid)
            if attack is not None:
                attack.__enter__()
                time.sleep(2.0)  # let the idle sockets and slowloris connections pile up first
            try:
                load = run_wrk(base, args.clients, args.seconds, proc.pid, queries, work)
            finally:
                probed = prober.stop()
                if attack is not None:
                    attack.__exit__(None, None, None)
            phases[phase] = {"search_clients": load, "separate_client": probed}
            if attack is not None:
                rss_end = rss_mb(proc.pid)
                time.sleep(5.0)
                phases[phase]["attack"] = attack.result()
                phases[phase]["server_rss_mb"] = {
                    "before_attack": rss_before,
                    "attack_end": rss_end,
                    "5s_after_attack": rss_mb(proc.pid),
                }
            print(json.dumps({phase: phases[phase]}), file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    guard_lines = [x for x in log.read_text(errors="replace").splitlines() if "connection guard:" in x]
    return {"command": "prompt-retriever serve " + " ".join(cmd), **phases, "guard_log": guard_lines[-5:]}


def build_run_index(run_dir: Path, corpus: Path, backend: str, out: Path) -> dict:
    """Index `corpus` with the run's model and the run's system (kind, alpha, k_rrf, depth, template) and
    save it to `out`, whose manifest then carries that system for `serve --index`."""
    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.encoding.encoder import DEFAULT_TEMPLATE
    from prompt_retriever.encoding.models import model_fingerprint
    from prompt_retriever.search import PromptRetriever
    from prompt_retriever.search.retriever import read_system
    from prompt_retriever.search.systems import SystemSpec

    info = read_system(run_dir)
    model_dir = run_dir / info["model"]
    model = str(model_dir.resolve()) if model_dir.is_dir() else info["model"]
    if model_fingerprint(model) != info["model_fingerprint"]:
        raise SystemExit(f"{run_dir}: the model changed since the run chose its system")
    spec = SystemSpec.from_dict(info)
    t0 = time.perf_counter()
    r = PromptRetriever(model, template=info.get("template", DEFAULT_TEMPLATE), backend=backend, system=spec)
    r.index(load_corpus(corpus)).save(out)
    seconds = time.perf_counter() - t0
    del r
    return {
        "run": str(run_dir),
        "label": info.get("label"),
        "system": spec.to_dict(),
        "model": model,
        "model_fingerprint": info["model_fingerprint"],
        "template": info.get("template", DEFAULT_TEMPLATE),
        "dev_ndcg@10": info.get("dev_ndcg@10"),
        "test_ndcg@10": info.get("test_ndcg@10"),
        "index_build_seconds": round(seconds, 1),
    }


def summarise(rows: list[dict]) -> dict:
    """Per label: the median over rounds of requests/s and latencies, and all errors summed."""
    out = {}
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = [r for r in rows if r["label"] == label]
        out[label] = {
            "rounds": len(mine),
            "requests_per_second": round(statistics.median(r["requests_per_second"] for r in mine), 1),
            "latency_ms_p50": round(statistics.median(r["latency_ms_p50"] for r in mine), 1),
            "latency_ms_p99": round(statistics.median(r["latency_ms_p99"] for r in mine), 1),
            "errors": sum(r["errors"] for r in mine),
            "rss_growth_mb_max": max(r["rss_growth_mb"] for r in mine),
        }
    return out


def main_run(args, work: Path, corpus: Path) -> None:
    run_dir = args.run.resolve()
    run_index = work / "run-index"
    system = build_run_index(run_dir, corpus, args.backend, run_index)
    queries = load_queries()
    dense_label = f"dense-base-{args.prompts}"
    plan = [
        (dense_label, ["--corpus", str(corpus)]),
        (f"run-system-{args.prompts}", ["--index", str(run_index)]),
        ("run-own-corpus", ["--run", str(run_dir)]),
    ]
    rows = []
    for i in range(args.rounds):
        for label, serve_args in plan if i % 2 == 0 else plan[::-1]:
            row = measure(label, serve_args, args, queries, work, args.port)
            row["round"] = i + 1
            if label != dense_label and row["served"]["kind"] != system["system"]["kind"]:
                raise SystemExit(f"{label}: the server answers with {row['served']['kind']}, not the run's system")
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    summary = summarise(rows)
    dense = summary[dense_label]
    ratios = {
        label: {
            "requests_per_second_vs_dense": round(s["requests_per_second"] / dense["requests_per_second"], 3),
            "latency_p99_vs_dense": round(s["latency_ms_p99"] / dense["latency_ms_p99"], 3),
        }
        for label, s in summary.items()
        if label != dense_label
    }
    emit(
        f"bench_load_run_{args.backend}",
        {
            **load_setup(args, queries),
            "rounds": args.rounds,
            "run_system": system,
            "summary": summary,
            "ratios": ratios,
            "measurements": rows,
            "cpu": cpu_info(),
            "note": "all servers measured one after another in this one invocation on a shared machine: "
            "compare them through the ratios, not with other runs",
            "bar": "zero errors, p99 < 100 ms at 10k prompts, flat memory",
        },
    )


def load_setup(args, queries) -> dict:
    """The load every result records: corpus size, clients, duration, backend, client and query count."""
    return {
        "prompts": args.prompts,
        "clients": args.clients,
        "seconds": args.seconds,
        "backend": args.backend,
        "client": args.client,
        "distinct_queries": len(queries),
    }


def main() -> None:
    if "--feedback" in sys.argv[1:]:  # the feedback log's cost and drop counter: bench_feedback.py's measurement
        import bench_feedback

        sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if a != "--feedback")]
        bench_feedback.main()
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--prompts", type=int, default=10000)
    ap.add_argument("--backend", default="onnx-int8", choices=["torch", "onnx", "onnx-int8"])
    ap.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--run", type=Path, help="a pipeline run folder: measure the system it chose (see above)")
    ap.add_argument("--rounds", type=int, default=1, help="with --run: times to measure the three servers")
    ap.add_argument("--attack", action="store_true", help="the load alone, then under attack (see above)")
    ap.add_argument("--idle", type=int, default=200, help="with --attack: idle sockets kept open")
    ap.add_argument("--slowloris", type=int, default=200, help="with --attack: slowloris connections")
    ap.add_argument(
        "--same-address", action="store_true", help="with --attack: attack from 127.0.0.1, the clients' address"
    )
    ap.add_argument(
        "--pipelined",
        type=int,
        default=100,
        help="with --attack: connections per pipelined burst every 2 s, beside one pipelining flood (0: neither)",
    )
    ap.add_argument("--event-loop", choices=["asyncio", "uvloop"], default="asyncio", help="with --attack: serve's")
    args = ap.parse_args()
    if args.client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --client python")
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    os.environ.setdefault("PROMPT_RETRIEVER_CACHE_DIR", str(work / "cache"))
    corpus = work / "corpus.jsonl"
    make_corpus(args.prompts, corpus)
    if args.run is not None:
        main_run(args, work, corpus)
        return
    queries = load_queries()
    if args.attack:
        if args.client != "wrk":
            raise SystemExit("--attack needs wrk (the Python client would compete with the attackers for the GIL)")
        res = measure_attack(args, queries, work, corpus)
        loop = "" if args.event_loop == "asyncio" else f"_{args.event_loop}"
        emit(
            f"bench_load_attack_{'same_' if args.same_address else ''}{args.backend}{loop}",
            {
                **load_setup(args, queries),
                "event_loop": args.event_loop,
                "bar": "under attack: the separate client's /healthz and search p99 < 100 ms, wrk search p99 < 100 ms",
                **res,
                "cpu": cpu_info(),
                "loadavg_1m_end": round(os.getloadavg()[0], 2),
            },
        )
        return
    row = measure("dense", ["--corpus", str(corpus)], args, queries, work, args.port)
    res = {k: row[k] for k in row if k not in ("label", "command", "served", "startup_seconds")}
    emit(
        f"bench_load_{args.backend}",
        {
            **load_setup(args, queries),
            "startup_seconds_incl_indexing": row["startup_seconds"],
            **res,
            "cpu": cpu_info(),
            "bar": "zero errors, p99 < 100 ms at 10k prompts, flat memory",
        },
    )


if __name__ == "__main__":
    main()
