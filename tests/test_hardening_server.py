"""The real server under hostile clients: idle and slow connections, giant heads, garbage, log forging.

One server for the module, started with small limits so that the attacks stay small (tens of sockets,
a few seconds): `--header-timeout 2 --max-connections 40 --max-connections-per-ip 10 --refuse-delay 0.5`. Attackers use
other loopback addresses (127.0.0.2, ...) than the well-behaved client (127.0.0.1), so the per-address
cap applies to them only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from server_util import free_port, stop, wait_ready

DATA = Path(__file__).parent / "data"
HEADER_TIMEOUT = 2.0
MAX_CONN = 40
MAX_PER_IP = 10
REFUSE_DELAY = 0.5


@dataclass
class Server:
    base: str
    port: int
    log: Path
    proc: subprocess.Popen

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("hardening") / "server.log"
    port = free_port()
    args = [
        "--corpus", str(DATA / "small_corpus.txt"),
        "--header-timeout", str(HEADER_TIMEOUT),
        "--max-connections", str(MAX_CONN),
        "--max-connections-per-ip", str(MAX_PER_IP),
        "--refuse-delay", str(REFUSE_DELAY),
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "prompt_retriever.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    with log.open("wb") as out:  # a file, not a pipe: a pipe nobody reads would block the server's log writes
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    srv = Server(f"http://127.0.0.1:{port}", port, log, proc)
    try:
        wait_ready(srv.base, proc, srv.log_text)
        yield srv
    finally:
        stop(proc)
    log_text = srv.log_text()  # the attacks left no traceback, and the refusals were not logged one by one
    assert "Traceback" not in log_text and "Exception in ASGI" not in log_text, log_text[-3000:]
    assert 1 <= log_text.count("connection guard:") <= 10 and "Invalid HTTP request" not in log_text, log_text[-3000:]


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def read_until_closed(s: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """(bytes read, whether the server closed the connection within `timeout` seconds)."""
    data, end = b"", time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return data, False
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            return data, False
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        if not chunk:
            return data, True
        data += chunk


def status_and_json(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    headers = {k.lower(): v for k, v in headers.items()}
    return int(lines[0].split()[1]), headers, json.loads(body) if body else {}


def exchange(port: int, request: bytes, source: str = "127.0.0.1", timeout: float = 10.0) -> bytes:
    with connect(port, source) as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)
        return read_until_closed(s, timeout)[0]


def latencies(base: str, n: int, path: str = "/healthz", **params) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = httpx.get(base + path, params=params or None, timeout=10.0)
        out.append(time.perf_counter() - t)
        assert r.status_code == 200, (r.status_code, r.text)
    return out


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]


def test_idle_connections_are_capped_per_address_and_in_total_and_timed_out(server):
    # 15 idle sockets from one address (5 over its cap), then 6 each from 6 more: 46 > 40 in total
    flood = [connect(server.port, "127.0.0.2") for _ in range(15)]
    flood += [connect(server.port, f"127.0.0.{i}") for i in range(3, 9) for _ in range(6)]
    opened = time.monotonic()
    # meanwhile a separate client is answered at once, searches included
    lat = latencies(server.base, 20) + latencies(server.base, 5, "/api/search", q="robot mechanic", k=3)
    assert max(lat) < 2.0, lat
    results = []
    for s in flood:  # everything is closed by the server once the header timeout has passed
        data, closed = read_until_closed(s, max(0.5, opened + HEADER_TIMEOUT + 2.0 - time.monotonic()))
        results.append((data, closed))
        s.close()
    assert all(closed for _, closed in results), sum(not c for _, c in results)
    # over the caps the longest-waiting ones were closed to make room (silently: they sent nothing)
    assert all(d == b"" for d, _ in results), [d for d, _ in results if d]
    assert httpx.get(server.base + "/healthz").status_code == 200


def slowloris(port: int, source: str, every: float, seconds: float) -> tuple[float, bytes, bool]:
    """One header line every `every` seconds, never finishing the head: (seconds until the server
    closed the connection, what it sent, whether it closed within `seconds`)."""
    t0 = time.monotonic()
    with connect(port, source) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        i, data = 0, b""
        while time.monotonic() - t0 < seconds:
            readable, _, _ = select.select([s], [], [], every)
            if readable:
                data, closed = read_until_closed(s, 2.0)
                return time.monotonic() - t0, data, closed
            try:
                s.sendall(f"X-Drip-{i}: a\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0, data, True
            i += 1
        return time.monotonic() - t0, data, False


def test_slowloris_gets_408_within_the_header_timeout(server):
    with_threads = []
    out: list = []
    for i in range(3):
        t = threading.Thread(target=lambda i=i: out.append(slowloris(server.port, "127.0.0.9", 0.3, 8.0)))
        t.start()
        with_threads.append(t)
    lat = latencies(server.base, 10)
    for t in with_threads:
        t.join()
    assert max(lat) < 2.0
    for took, data, closed in out:
        assert closed and took < HEADER_TIMEOUT + 1.5, (took, data)
        code, headers, body = status_and_json(data)
        assert code == 408 and headers["content-type"] == "application/json" and "error" in body


def test_request_heads_over_16_kb_get_431_json(server):
    def head(extra: int) -> bytes:
        return b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * extra + b"\r\n\r\n"

    assert status_and_json(exchange(server.port, head(15_000).replace(b"Host: x", b"Connection: close")))[0] == 200
    code, headers, body = status_and_json(exchange(server.port, head(20_000)))
    assert code == 431 and headers["content-type"] == "application/json" and "16 KB" in body["error"]
    many = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 50) for i in range(400)) + b"\r\n"
    assert status_and_json(exchange(server.port, many))[0] == 431
    code, _, body = status_and_json(exchange(server.port, b"GET /healthz?q=" + b"x" * 20_000 + b" HTTP/1.1\r\n\r\n"))
    assert code in (414, 431) and "error" in body
    # a 4 MB header is cut off early (431, or a reset while still sending), never answered 200 nor buffered
    rss = server.rss_mb()
    with connect(server.port, "127.0.0.10") as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nX-Huge: ")
        try:
            for _ in range(64):
                s.sendall(b"b" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, _ = read_until_closed(s, 5.0)
    assert not data or status_and_json(data)[0] == 431, data[:200]
    assert server.rss_mb() - rss < 20
    assert httpx.get(server.base + "/healthz").status_code == 200


def test_protocol_errors_are_json(server):
    code, headers, body = status_and_json(exchange(server.port, b"NOT AN HTTP REQUEST\r\n\r\n"))
    assert code == 400 and headers["content-type"] == "application/json" and "error" in body
    r = httpx.post(server.base + "/api/search", params={"q": "x"})
    assert r.status_code == 405 and r.json()["error"] and "GET" in r.headers["allow"]


def test_head_requests_and_access_log_is_escaped(server):
    r = httpx.head(server.base + "/healthz")
    assert r.status_code == 200 and r.content == b""
    assert httpx.head(server.base + "/api/search", params={"q": "robot"}).status_code == 200
    r = httpx.get(server.base + "/api/prompts/a%0aFORGED%20200%201.0ms%0d%1b[31m")
    assert r.status_code in (404, 422)
    time.sleep(0.3)
    log = server.log_text()
    assert "HEAD /healthz 200" in log and "GET /healthz 200" in log  # the access log is there at all
    assert not any(line.startswith("FORGED") for line in log.splitlines())
    assert "/api/prompts/a\\nFORGED 200 1.0ms\\r\\x1b[31m" in log
    assert "\x1b" not in log


def test_combined_attack_keeps_healthz_and_search_fast(server):
    """Idle flood, slowloris and a giant header at once, while a separate client measures."""
    stop = threading.Event()

    def idle_flood():
        socks = []
        while not stop.is_set():
            for i in range(11, 16):  # 5 addresses, each keeps reopening up to past its cap
                with contextlib.suppress(OSError):
                    socks.append(connect(server.port, f"127.0.0.{i}"))
            stop.wait(0.2)
            if len(socks) > 60:
                for s in socks[:20]:
                    s.close()
                del socks[:20]
        for s in socks:
            s.close()

    def giant_headers():
        while not stop.is_set():
            exchange(server.port, b"GET / HTTP/1.1\r\nX-Big: " + b"c" * 100_000 + b"\r\n\r\n", "127.0.0.16", 2.0)

    threads = [threading.Thread(target=idle_flood), threading.Thread(target=giant_headers)]
    threads += [threading.Thread(target=slowloris, args=(server.port, "127.0.0.17", 0.5, 6.0)) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        health = latencies(server.base, 60)
        search = latencies(server.base, 15, "/api/search", q="haunted lighthouse")
    finally:
        stop.set()
        for t in threads:
            t.join()
    print(f"\nunder attack: healthz p99 {p99(health) * 1000:.1f} ms (n={len(health)}), "
          f"search p99 {p99(search) * 1000:.1f} ms (n={len(search)})")  # fmt: skip
    assert p99(health) < 1.0 and p99(search) < 2.0


def test_logging_is_configured_before_the_index_loads(tmp_path):
    """A library that logs before the server configures logging (ONNX Runtime's quantiser did, on the
    first start) must not leave the root logger at WARNING: the access log would go missing."""
    script = f"""
import logging
import prompt_retriever.serving.server as srv
def fake_build(**kw):
    logging.warning("a library warning while the index builds")  # configures the root logger itself
    return object()
def fake_serve(retriever, **kw):
    logging.getLogger("prompt_retriever.api").info("GET /healthz 200 0.1ms")
srv.build_retriever, srv.serve = fake_build, fake_serve
from prompt_retriever.cli import app
app(["serve", "--corpus", {str(DATA / "small_corpus.txt")!r}], standalone_mode=False)
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "prompt_retriever.api GET /healthz 200" in res.stderr + res.stdout, res.stderr[-2000:]


def test_hundreds_of_idle_connections_do_not_turn_others_away(server):
    """uvicorn alone answered every other client 503 once 200 connections were open and idle."""
    flood = [connect(server.port, f"127.0.1.{i}") for i in range(22) for _ in range(MAX_PER_IP)]
    try:
        for _ in range(5):
            r = httpx.get(server.base + "/healthz", timeout=5.0)
            assert r.status_code == 200, (r.status_code, r.text)
        r = httpx.get(server.base + "/api/search", params={"q": "robot"}, timeout=5.0)
        assert r.status_code == 200
    finally:
        for s in flood:
            s.close()


def test_guard_caps_per_address_evicts_the_longest_waiting_and_503s_when_all_are_busy():
    from prompt_retriever.serving.guard import ConnectionGuard

    class Conn:
        evicted = False

        def evict(self):
            self.evicted = True

    g = ConnectionGuard(max_connections=3, max_per_ip=2)
    a1, a2, a3, b1, c1, d1, e1 = (Conn() for _ in range(7))
    assert g.admit(a1, "a") is None and g.admit(a2, "a") is None
    g.stop_waiting(a1)  # a1's request head is complete: busy, not evictable
    assert g.admit(a3, "a") is None and a2.evicted and not a1.evicted  # the address's longest waiting
    assert g.per_ip["a"] == 2 and g.total == 2
    g.stop_waiting(a3)
    assert g.admit(e1, "a")[0] == 429  # both of a's connections are busy: refused
    assert g.admit(b1, "b") is None
    g.start_waiting(a1)  # a1 idle again (keep-alive) after b1 started waiting: b1 has waited longest
    assert g.admit(c1, "c") is None and b1.evicted and not a1.evicted and g.total == 3
    g.stop_waiting(a1)
    g.stop_waiting(c1)
    assert g.admit(d1, "d")[0] == 503  # everyone busy with a request
    for conn in (a1, a3, c1, a1):  # releasing twice is harmless
        g.release(conn)
    assert g.total == 0 and not g.per_ip and not g.waiting and not g.waiting_by_ip


def test_a_connection_closed_to_make_room_is_held_before_it_closes(server):
    """At the per-address cap a new connection closes that address's longest-waiting one, which never
    sent a request: it is closed only after `refuse_delay`, so a client that reconnects at once
    cannot churn the slots; the newcomer is served."""
    # connections evicted by earlier tests are held `refuse_delay` (reading paused, so their clients'
    # closes go unnoticed meanwhile); with `max_held` of them held, an eviction closes at once
    time.sleep(REFUSE_DELAY * 2)
    source = "127.0.3.1"
    flood = [connect(server.port, source) for _ in range(MAX_PER_IP)]
    try:
        time.sleep(0.1)
        t0 = time.monotonic()
        with connect(server.port, source) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, _ = read_until_closed(s, 5.0)
        assert data.startswith(b"HTTP/1.1 200"), data
        oldest = flood[0]
        early, closed_early = read_until_closed(oldest, max(0.05, t0 + REFUSE_DELAY / 2 - time.monotonic()))
        assert not closed_early and early == b""
        _, closed = read_until_closed(oldest, HEADER_TIMEOUT)
        assert closed and time.monotonic() - t0 >= REFUSE_DELAY * 0.8
        assert time.monotonic() - t0 < HEADER_TIMEOUT - 0.2  # closed by the eviction, not the head deadline
        for s in flood[1:]:  # the others are still open (until the head deadline)
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)
    finally:
        for s in flood:
            s.close()


def test_error_response_is_complete_json():
    from prompt_retriever.serving.guard import error_response

    raw = error_response(431, "request head too large")
    code, headers, body = status_and_json(raw)
    assert code == 431 and headers["connection"] == "close" and body == {"error": "request head too large"}
    assert int(headers["content-length"]) == len(raw.partition(b"\r\n\r\n")[2])


def test_guard_holds_at_most_max_held_refusals():
    from prompt_retriever.serving.guard import ConnectionGuard

    g = ConnectionGuard(max_connections=8, max_held=2)
    assert g.hold("a") and g.hold("a") and not g.hold("b")  # the third is reset at once
    g.unhold()
    assert g.hold("b") and g.held == 2
    assert ConnectionGuard(max_connections=5).max_held == 5  # default: as many as the total cap


@contextlib.contextmanager
def guarded_uvicorn(app, guard):
    """uvicorn in a thread, serving `app` through the guard's protocol on the asyncio loop (as `serve`
    does); yields its port."""
    import uvicorn

    from prompt_retriever.serving.guard import guarded_protocol

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=guarded_protocol(guard), log_level="error", loop="asyncio"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture()
def slow_server():
    """uvicorn with the guard (2 connections per address, 0.5 s refuse delay) over an app that takes 3 s to
    answer, so that connections can be busy with a request: only then is a newcomer refused."""
    import asyncio

    from prompt_retriever.serving.guard import ConnectionGuard

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await asyncio.sleep(3.0)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = ConnectionGuard(max_connections=8, max_per_ip=2, refuse_delay=0.5)
    with guarded_uvicorn(app, guard) as port:
        yield port, guard


def test_refusal_at_accept_is_held_so_a_reconnect_storm_stays_small(slow_server):
    """A slowloris tool reconnects the moment it is refused. Refused at once, one address made thousands
    of connections a second and the server spent its cores refusing them; held for `refuse_delay`, each
    excess client costs one accept per delay."""
    port, guard = slow_server
    busy = [connect(port, "127.0.2.1") for _ in range(2)]  # the address's whole allowance, busy
    try:
        for s in busy:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.2)
        t0 = time.monotonic()
        with connect(port, "127.0.2.1") as s:  # one over the cap: no answer at first ...
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            early, closed_early = read_until_closed(s, 0.25)
            assert early == b"" and not closed_early and guard.held == 1
            data, closed = read_until_closed(s, 2.0)  # ... then its 429, as JSON, and the close
        code, headers, body = status_and_json(data)
        assert closed and code == 429 and "too many connections" in body["error"], data
        assert headers["content-type"] == "application/json"
        assert time.monotonic() - t0 >= 0.4
        # a client reconnecting as soon as it is refused, for 1.2 s: a few accepts, not thousands
        attempts, end = 0, time.monotonic() + 1.2
        while time.monotonic() < end:
            attempts += 1
            with connect(port, "127.0.2.1") as s:
                read_until_closed(s, max(0.05, end - time.monotonic()))
        assert attempts <= 4, attempts
        for s in busy:  # the busy ones were never disturbed
            data, _ = read_until_closed(s, 5.0)
            assert data.startswith(b"HTTP/1.1 200"), data
    finally:
        for s in busy:
            s.close()


def test_open_file_limit_is_raised_for_the_connection_caps():
    import resource

    from prompt_retriever.serving.server import ensure_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert ensure_file_limit(16) == soft  # enough already: untouched
    want = soft + 8 if hard == resource.RLIM_INFINITY else min(soft + 8, hard)
    assert ensure_file_limit(soft + 8) == want == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ------------------------------------------------------------------ HTTP pipelining
PIPELINE_DEPTH = 16  # the guard's default cap on requests queued behind the one in progress
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def pipelined_flood(port: int, source: str, seconds: float, read_every: float = 0.05) -> tuple[int, bool]:
    """Send `GET /healthz` back to back on one connection for up to `seconds`, reading at most 4 KB every
    `read_every` seconds (a client that barely reads): (responses received, whether the server closed)."""
    burst = HEALTHZ * 1000
    got, closed, end, last_read = b"", False, time.monotonic() + seconds, 0.0
    with connect(port, source) as s:
        s.setblocking(False)
        while time.monotonic() < end and not closed:
            with contextlib.suppress(BlockingIOError):
                try:
                    s.send(burst)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
            if time.monotonic() - last_read >= read_every:
                last_read = time.monotonic()
                try:
                    chunk = s.recv(4096)
                    got += chunk
                    closed = closed or chunk == b""
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    closed = True
            time.sleep(0.005)
        if closed:  # read what is left of the answers
            s.setblocking(True)
            more, _ = read_until_closed(s, 5.0)
            got += more
    return got.count(b"HTTP/1.1 200"), closed


def test_a_pipelining_client_that_barely_reads_is_cut_off_and_memory_stays_flat(server):
    """One connection sending `GET /healthz` back to back and barely reading grew the server by ~115 MB/s:
    every request read was queued. Now at most the depth cap is queued: the queued ones are answered, then
    the connection is closed; memory does not grow and others are answered meanwhile."""
    before = server.rss_mb()
    result: list = []
    t = threading.Thread(target=lambda: result.append(pipelined_flood(server.port, "127.0.4.1", 4.0)))
    t.start()
    try:
        time.sleep(0.5)
        for _ in range(5):  # a separate client is answered while it runs
            assert httpx.get(server.base + "/healthz", timeout=10.0).status_code == 200
    finally:
        t.join()
    answered, closed = result[0]
    assert closed, "the server never closed a connection that pipelines without end"
    assert 1 <= answered <= 1 + PIPELINE_DEPTH, answered
    assert server.rss_mb() - before < 60, (before, server.rss_mb())
    assert httpx.get(server.base + "/healthz").status_code == 200


def test_pipelined_bursts_from_many_connections_do_not_block_others(server):
    """Connections each sending one ~260 KB burst of pipelined requests (7,000 each) blocked the event loop
    for everyone. Now each burst is parsed only as deep as the cap: its queued requests are answered (the
    last with `connection: close`), the rest dropped, and a separate client is answered meanwhile."""
    burst = HEALTHZ * 7400
    socks = [connect(server.port, f"127.0.5.{i}") for i in range(1, 4) for _ in range(MAX_PER_IP)]  # 30 < MAX_CONN
    before = server.rss_mb()
    try:
        for s in socks:
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
                s.send(burst)  # as much as the kernel takes at once
        r = httpx.get(server.base + "/healthz", timeout=10.0)  # answered, not stuck behind the bursts
        assert r.status_code == 200
        answered = []
        for s in socks:
            s.setblocking(True)
            data, closed = read_until_closed(s, 5.0)
            answered.append((data.count(b"HTTP/1.1 200"), closed, b"connection: close" in data))
        assert all(closed for _, closed, _ in answered), answered
        assert all(1 <= n <= 1 + PIPELINE_DEPTH and said_close for n, _, said_close in answered), answered
        # the queued requests are dropped, not answered: a burst costs about one answer per connection, as
        # a plain request would (answering the 16 queued behind each made a burst 17 times dearer)
        assert sum(n for n, _, _ in answered) <= len(socks) + PIPELINE_DEPTH, answered
        assert server.rss_mb() - before < 60
    finally:
        for s in socks:
            s.close()
    assert httpx.get(server.base + "/healthz").status_code == 200


def test_a_pipelining_client_within_the_cap_gets_every_answer_in_order(server):
    """Pipelining itself stays allowed: a client sending a few requests at once gets every answer (here 8:
    this server's per-address share of queued requests is 10, its per-address connection cap, below 32)."""
    paths = [b"/healthz", b"/api/facets", b"/readyz", b"/api/search?q=robot&k=2"] * 2
    req = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in paths[:-1])
    req += b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = exchange(server.port, req, "127.0.4.2")
    assert data.count(b"HTTP/1.1 200") == len(paths), data[:500]


def test_a_client_over_the_pipelining_cap_gets_the_answer_in_progress_then_a_clean_close(server):
    """Past the cap the connection is closed, but gracefully: the request in progress is answered with
    `connection: close`, the queued ones are dropped unanswered (a pipelining client sends them again on a
    new connection, RFC 9112 9.3.2), then end of stream, not a reset (closing a socket whose client's
    requests lie unread in it resets the connection, and the answer in flight was lost)."""
    n = 40
    req = b"".join(b"GET /api/search?q=word%d&k=1 HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n))
    with connect(server.port, "127.0.4.3") as s:
        s.sendall(req)
        data = b""
        while True:  # a reset raises here
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 1 and answers[0].startswith(b"200 "), data[:300]
    assert json.loads(answers[0].partition(b"\r\n\r\n")[2])["query"] == "word0"
    assert b"connection: close" in answers[0]


def test_guard_counts_queued_requests_per_address_and_in_total():
    from prompt_retriever.serving.guard import ConnectionGuard

    class Conn:
        def evict(self):
            pass

    assert (ConnectionGuard().max_queued_per_ip, ConnectionGuard().max_queued) == (32, 256)
    g = ConnectionGuard(max_connections=3, max_per_ip=2)  # queued caps default to no more than these
    assert (g.max_queued_per_ip, g.max_queued) == (2, 3)
    a, b, c = Conn(), Conn(), Conn()
    assert g.admit(a, "a") is None and g.admit(b, "a") is None and g.admit(c, "c") is None
    assert g.set_queued(a, 2) and g.queued_per_ip["a"] == 2
    assert not g.set_queued(b, 1)  # the address's share of queued requests is used up
    assert g.set_queued(a, 1) and g.set_queued(b, 1) and g.queued == 2
    assert g.set_queued(c, 1) and not g.set_queued(c, 2)  # 3 queued in all: the total cap
    g.release(a)
    assert g.queued == 2 and g.queued_per_ip == {"a": 1, "c": 1}
    g.release(b)
    g.release(c)
    assert g.queued == 0 and not g.queued_per_ip


# ------------------------------------------------------------------ bursts of pipelining connections
def test_guard_counts_pipelining_connections_per_address():
    """A token bucket per address: `pipelining_burst` at once, then one per 1/`pipelining_rate` s; other
    addresses are not counted against; a refused one takes no turn."""
    from prompt_retriever.serving.connections import ConnectionGuard

    g = ConnectionGuard(pipelining_burst=3, pipelining_rate=10.0)
    assert [g.take_pipelining("a", 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert g.take_pipelining("b", 0.0)  # another address has its own bucket
    assert g.take_pipelining("a", 0.11) and not g.take_pipelining("a", 0.11)  # refilled at the rate
    assert all(g.take_pipelining("a", 10.0) for _ in range(3))  # full again after a while


@pytest.fixture()
def small_bucket_server():
    """uvicorn with the guard (2 pipelining connections per address at once, then 1 a second; refusals
    answered after 0.3 s) over an app that answers at once."""

    from prompt_retriever.serving.guard import ConnectionGuard

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = ConnectionGuard(refuse_delay=0.3, pipelining_burst=2, pipelining_rate=1.0)
    with guarded_uvicorn(app, guard) as port:
        yield port


def test_a_burst_of_pipelining_connections_is_refused_past_the_address_rate(small_bucket_server):
    """100 connections each sending a 259 KB pipelined burst were parsed all at once, and a visitor's new
    connection waited behind all of them. Now an address's new connections whose first read holds several
    requests are counted (a small burst, then a rate): past it they get a 429, unparsed; connections
    sending one request at a time from the same address are never counted, nor are other addresses."""
    port = small_bucket_server
    burst = HEALTHZ * 200
    socks = [connect(port, "127.0.6.1") for _ in range(5)]
    try:
        for s in socks:
            s.sendall(burst)
        got = [read_until_closed(s, 5.0) for s in socks]
    finally:
        for s in socks:
            s.close()
    codes = [int(d.split()[1]) for d, _ in got]
    assert codes[:2] == [200, 200] and all(closed for _, closed in got), got  # the burst: one answer each
    assert codes.count(429) >= 2 and set(codes) <= {200, 429}, codes
    refused = next(d for d, _ in got if d.startswith(b"HTTP/1.1 429"))
    assert (
        refused.count(b"HTTP/1.1 ") == 1 and "too many pipelining connections" in status_and_json(refused)[2]["error"]
    )
    one = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for _ in range(5):  # plain requests from the same address: never counted
        assert exchange(port, one, "127.0.6.1").startswith(b"HTTP/1.1 200")
    assert exchange(port, burst, "127.0.6.2").startswith(b"HTTP/1.1 200")  # another address's bucket


def test_a_pipelining_connection_refused_past_the_rate_is_counted_out_and_never_evicted_twice():
    """A connection refused for the pipelining rate was held while still counted as waiting, so a newcomer
    from its address could evict it: held a second time, and one place of `max_held` was lost for good."""
    from prompt_retriever.serving.connections import ConnectionGuard

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = ConnectionGuard(max_per_ip=1, refuse_delay=0.5, pipelining_burst=1, pipelining_rate=0.01)
    two = HEALTHZ + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with guarded_uvicorn(app, guard) as port:
        assert exchange(port, two, "127.0.7.1").count(b"HTTP/1.1 200") == 2  # the address's one token
        with connect(port, "127.0.7.1") as held:
            held.sendall(two)
            time.sleep(0.2)
            assert guard.held == 1
            with connect(port, "127.0.7.1") as newcomer:  # the address's cap is 1: the held one is not in it
                newcomer.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert read_until_closed(newcomer, 5.0)[0].startswith(b"HTTP/1.1 200")
            data, _ = read_until_closed(held, 5.0)
            assert data.startswith(b"HTTP/1.1 429"), data
        end = time.monotonic() + 5.0
        while (guard.held or guard.total) and time.monotonic() < end:
            time.sleep(0.05)
        assert (guard.held, guard.total) == (0, 0)


# ------------------------------------------------------------------ browser-facing headers, redirects
WEB = Path(__file__).parents[1] / "src" / "prompt_retriever" / "serving" / "web"


@pytest.mark.parametrize(
    "path", ["/", "/docs", "/static/app.js", "/static/style.css", "/static/docs.js", "/static/docs.css",
             "/healthz", "/api/search?q=robot", "/openapi.json", "/no-such-page"],
)  # fmt: skip
def test_page_static_files_and_api_send_security_headers(server, path):
    r = httpx.get(server.base + path)
    assert r.status_code == (404 if path == "/no-such-page" else 200), (path, r.status_code)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"  # the page cannot be framed (clickjacking)
    csp = {d.split()[0]: d.split()[1:] for d in r.headers["content-security-policy"].split(";") if d.strip()}
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"] and csp["base-uri"] == ["'none'"]
    assert not any("unsafe" in v or "*" in v for values in csp.values() for v in values), csp


def test_the_pages_have_nothing_inline_that_the_csp_would_block():
    """script-src and style-src are 'self': an inline <script> or <style>, a style="" attribute or an
    on*="" handler would be blocked by the browser, so the pages carry none (all in /static)."""
    for name in ("index.html", "docs.html"):
        html = (WEB / name).read_text()
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I)
        assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts), name
        assert not re.search(r"<style\b", html, re.I), name
        assert not re.search(r"\sstyle\s*=", html, re.I) and not re.search(r"\son[a-z]+\s*=", html, re.I), name
        assert not re.search(r"javascript:", html, re.I), name
    for name in ("app.js", "docs.js"):  # no code from strings (blocked without 'unsafe-eval')
        js = (WEB / name).read_text()
        assert not re.search(r"\beval\s*\(|new Function\s*\(|setTimeout\(\s*[\"'`]|\.setAttribute\(\s*[\"']style", js)


@pytest.mark.parametrize("host", [b"evil.example", b"evil.example:8000"])
def test_no_redirect_is_built_from_the_clients_host_header(server, host):
    """`/api/search/?q=a` with `Host: evil.example` was answered `307 location: http://evil.example/...`
    (the framework's trailing-slash redirect, built from the Host header). Now such a redirect is a
    relative one to our own route, and any other path is a plain 404."""

    def get(target: bytes) -> tuple[int, dict[str, str], bytes]:
        raw = exchange(server.port, b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (target, host))
        assert b"evil.example" not in raw, raw[:300]
        lines = raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, raw

    code, headers, _ = get(b"/api/search/?q=a")
    assert code == 307 and headers["location"] == "/api/search?q=a", headers
    code, headers, _ = get(b"/docs/")
    assert code == 307 and headers["location"] == "/docs", headers
    for target in (b"//evil.example/", b"//evil.example/healthz/", b"/\\evil.example/", b"/no-such-page/"):
        code, headers, raw = get(target)
        assert code == 404 and "location" not in headers, (target, raw[:300])
