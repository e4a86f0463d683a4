"""`ConnectionGuard`: the connection accounting behind `guard.py`'s protocol (counts per client address
and in all, the connections waiting for a request, longest first, queued pipelined requests, refused
connections held, refusals counted and logged at most every 10 s), its default limits, and the JSON
error responses written below HTTP (`error_response`). See `guard.py` for what the limits defend against.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, OrderedDict
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

log = logging.getLogger("prompt_retriever.guard")

HEADER_TIMEOUT = 10.0
MAX_HEAD_BYTES = 16 * 1024
MAX_URL_BYTES = 8 * 1024
MAX_CONNECTIONS = 1024
MAX_PER_IP = 512
MAX_PIPELINE = 16  # requests queued behind the one in progress, per connection
MAX_QUEUED_PER_IP = 32  # pipelined requests queued on all of one address's connections together
MAX_QUEUED = 256  # pipelined requests queued on all connections together
PIPELINING_BURST = 32  # new connections pipelining from their first read, per address at once ...
PIPELINING_RATE = 64.0  # ... and a second after that; the others are refused (429)
LINGER = 1.0  # seconds a refused connection stays open (write side shut) so the client reads the answer
REFUSE_DELAY = 2.0  # seconds a connection refused at accept waits for its answer (reading paused)


def error_response(status: int, message: str, default_headers=()) -> bytes:
    """A complete `Connection: close` HTTP/1.1 response with body `{"error": message}`."""
    body = json.dumps({"error": message}).encode()
    head = [STATUS_LINE[status]]
    for name, value in default_headers:
        head += [name, b": ", value, b"\r\n"]
    head += [
        b"content-type: application/json\r\n",
        b"x-content-type-options: nosniff\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class ConnectionGuard:
    """State shared by every connection of one server: counts per address, and the connections waiting
    for a request (oldest first), which are the ones closed when the total cap is reached."""

    def __init__(
        self,
        *,
        header_timeout: float = HEADER_TIMEOUT,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_url_bytes: int = MAX_URL_BYTES,
        max_connections: int = MAX_CONNECTIONS,
        max_per_ip: int = MAX_PER_IP,
        refuse_delay: float = REFUSE_DELAY,
        max_held: int | None = None,
        max_pipeline: int = MAX_PIPELINE,
        max_queued_per_ip: int | None = None,
        max_queued: int | None = None,
        pipelining_burst: int = PIPELINING_BURST,
        pipelining_rate: float = PIPELINING_RATE,
    ):
        self.pipelining_burst, self.pipelining_rate = max(1, pipelining_burst), max(1e-3, pipelining_rate)
        self._full_at: dict[str, float] = {}  # by address: when its pipelining bucket is full again
        self.max_pipeline = max(1, max_pipeline)
        # defaults: MAX_QUEUED_PER_IP and MAX_QUEUED, never more than the connection caps
        self.max_queued_per_ip = max(
            1, min(max_per_ip, MAX_QUEUED_PER_IP) if max_queued_per_ip is None else max_queued_per_ip
        )
        self.max_queued = max(1, min(max_connections, MAX_QUEUED) if max_queued is None else max_queued)
        self.queued = 0  # pipelined requests waiting behind the one in progress, on every connection
        self.queued_per_ip: Counter[str] = Counter()
        self.refuse_delay = max(0.0, refuse_delay)
        self.max_held = max(0, max_connections if max_held is None else max_held)
        self.held = 0  # refused connections waiting for their answer
        self.header_timeout, self.max_head_bytes, self.max_url_bytes = header_timeout, max_head_bytes, max_url_bytes
        self.max_connections, self.max_per_ip = max(1, max_connections), max(1, max_per_ip)
        self.per_ip: Counter[str] = Counter()
        self.total = 0
        # connections without a request in progress, longest waiting first: in all, and by address
        self.waiting: OrderedDict[Any, None] = OrderedDict()
        self.waiting_by_ip: dict[str, OrderedDict[Any, None]] = {}
        self.counts: Counter[str] = Counter()  # refusals by kind since the last report
        self._last_report = -float("inf")  # the first refusal is logged at once, later ones summed up

    def admit(self, conn, ip: str) -> tuple[int, str] | None:
        """Count `conn` in, or say why not: (status, message)."""
        if self.per_ip[ip] >= self.max_per_ip:
            victim = self._longest_waiting(self.waiting_by_ip.get(ip))
            if victim is None:
                self.note("over the per-address cap (429)", ip)
                return 429, f"too many connections from your address (at most {self.max_per_ip})"
            self._evict(victim, ip)
        elif self.total >= self.max_connections:
            victim = self._longest_waiting(self.waiting)
            if victim is None:
                self.note("over the total cap, all busy (503)", ip)
                return 503, "server busy: too many connections, try again later"
            self._evict(victim, ip)
        self.total += 1
        self.per_ip[ip] += 1
        conn._guard_ip = ip
        self._wait(conn, ip)
        return None

    @staticmethod
    def _longest_waiting(waiting: OrderedDict[Any, None] | None):
        return next(iter(waiting)) if waiting else None

    def _evict(self, victim, ip: str) -> None:
        self.release(victim)
        victim.evict()
        self.note("idle or slow connections closed for new ones", ip)

    def _wait(self, conn, ip: str) -> None:
        for waiting in (self.waiting, self.waiting_by_ip.setdefault(ip, OrderedDict())):
            waiting[conn] = None
            waiting.move_to_end(conn)

    def release(self, conn) -> None:
        ip = getattr(conn, "_guard_ip", None)
        if ip is None:
            return
        self.stop_waiting(conn)
        self.set_queued(conn, 0)
        conn._guard_ip = None
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]

    def set_queued(self, conn, n: int) -> bool:
        """Record that `conn` has `n` requests queued behind the one in progress. False, and nothing
        changes, when that would pass its address's share (`max_queued_per_ip`) or the total (`max_queued`);
        shrinking always succeeds."""
        ip = getattr(conn, "_guard_ip", None)
        old = getattr(conn, "_guard_queued", 0)
        delta = n - old
        if delta > 0 and (
            ip is None
            or self.queued_per_ip[ip] + delta > self.max_queued_per_ip
            or self.queued + delta > self.max_queued
        ):
            return False
        if delta and ip is not None:
            self.queued += delta
            self.queued_per_ip[ip] += delta
            if self.queued_per_ip[ip] <= 0:
                del self.queued_per_ip[ip]
        conn._guard_queued = n
        return True

    def take_pipelining(self, ip: str, now: float | None = None) -> bool:
        """May a new connection from `ip` whose first read holds several requests go on? At most
        `pipelining_burst` at once, then `pipelining_rate` a second (a token bucket per address, kept as the
        time it is full again). Connections sending one request at a time are never counted, so clients
        behind one address (a proxy, a NAT) are not slowed by an attacker sharing it."""
        now = time.monotonic() if now is None else now
        interval = 1.0 / self.pipelining_rate
        full_at = max(self._full_at.get(ip, now), now) + interval
        if full_at - now > self.pipelining_burst * interval + 1e-9:
            return False
        self._full_at[ip] = full_at
        if len(self._full_at) > 4096:  # forget the addresses whose buckets are full again
            self._full_at = {a: t for a, t in self._full_at.items() if t > now}
        return True

    def hold(self, ip: str) -> bool:
        """Take one refused connection into the waiting room, or say it is full (reset it at once)."""
        if self.held >= self.max_held:
            self.note("refusals reset at once (too many held)", ip)
            return False
        self.held += 1
        return True

    def unhold(self) -> None:
        self.held -= 1

    def start_waiting(self, conn) -> None:
        ip = getattr(conn, "_guard_ip", None)
        if ip is not None:
            self._wait(conn, ip)

    def stop_waiting(self, conn) -> None:
        self.waiting.pop(conn, None)
        ip = getattr(conn, "_guard_ip", None)
        by_ip = self.waiting_by_ip.get(ip) if ip is not None else None
        if by_ip is not None:
            by_ip.pop(conn, None)
            if not by_ip:
                del self.waiting_by_ip[ip]

    def note(self, what: str, ip: str) -> None:
        """Count a refusal; log the counts at most every 10 s (an attack must not flood the log)."""
        self.counts[what] += 1
        now = time.monotonic()
        if now - self._last_report >= 10.0:
            summary = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))
            log.warning("connection guard: %s (latest from %s; next report in 10 s at the earliest)", summary, ip)
            self.counts.clear()
            self._last_report = now
