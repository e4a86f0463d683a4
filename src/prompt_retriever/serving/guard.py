"""Connection limits uvicorn lacks: a deadline for the request head, a cap on its size, connection caps
per client address and in total, a rate for new pipelining connections, and JSON for every error the
HTTP layer answers itself.

uvicorn (httptools parser) closes idle keep-alive connections, but a new connection that sends
nothing, or one header line a second (slowloris), is held forever; its `limit_concurrency` then answers
everyone else 503; and httptools buffers a header of any size. `GuardedHttpToolsProtocol` is uvicorn's
own `HttpToolsProtocol` with a few hooks, so normal traffic takes the same fast path:

- a connection (or a keep-alive connection once its next request starts) must deliver its whole head
  (request line and headers) within `header_timeout` seconds, else 408 (silently closed if it sent
  nothing); a request body must arrive within the same deadline;
- a head over `max_head_bytes` (16 KB) gets 431, a request target over `max_url_bytes` 414, counted as
  the bytes arrive, so an endless header is cut off without being buffered;
- at most `max_per_ip` connections per client address (512) and `max_connections` in all (1024): at
  either cap a new connection closes the one (from the same address, or any) that has waited longest
  without a request in progress, an idle or slow one: a client sending a real request finishes its head
  in milliseconds. Only when every connection is busy with a request does a new one get 429 (per
  address) or 503 (in all). The caps are high because idle connections are cheap here (a few KB each)
  and one address can be many clients: with 200 idle sockets, 200 slowloris and the well-behaved clients
  all on 127.0.0.1, a per-address cap of 64 refused the well-behaved ones too;
- HTTP pipelining: uvicorn queues every request it parses behind the one in progress, and one read
  (256 KB) holds thousands of small ones: one connection sending `GET /healthz` back to back grew the
  server by ~115 MB/s, and 100 connections each sending one 259 KB burst blocked the event loop for
  more than 10 s. Here at most `max_pipeline` (16) requests wait behind the one in progress on a
  connection, `max_queued_per_ip` (32) on one address's connections and `max_queued` (256) in all.
  Reading stays paused while requests are queued (uvicorn's own flow control: it pauses when it queues
  one but resumes after every answer). A request past a cap stops the parser at once (the rest of that
  read is never parsed): the request in progress is answered with `connection: close`, the queued ones
  are dropped unanswered, and the connection closes; one whose client does not read that answer is
  reset once found stuck at two checks `header_timeout` apart. A pipelining client retries unanswered
  requests on a new connection (RFC 9112, 9.3.2), so this costs a well-behaved one a reconnect, never a
  wrong answer; answering the queued ones too made a burst of such connections 17 times dearer than
  the same connections with one request each;
- bursts of pipelining connections: a new connection whose first read holds several requests (no
  browser or proxy sends that) is counted against its address's bucket, `pipelining_burst` (32) at once
  and `pipelining_rate` (64) a second; past it, it is refused (429) unparsed. 100 such connections
  every 2 s, parsed all at once, made a visitor's new connection wait behind all of them. Connections
  sending one request at a time are never counted, so clients sharing an address with an attacker (a
  proxy, a NAT) are not slowed by this cap.

Refusals are written as JSON, the write side is shut (the client reads the answer, not a reset) and
the connection is dropped a second later. A connection refused at accept (429, 503), or closed to make
room before it sent a whole request, is answered (or closed) only after `refuse_delay` seconds (2 s), its
reading paused meanwhile: a slowloris tool reconnects the moment it is refused or closed, and refusing
such a storm at once cost the server both cores (200 slowloris from one address over a cap of 64: 47k
refusals in 15 s, search p99 1,006 ms). Held, each excess connection costs one accept per `refuse_delay`.
At most `max_held` connections are held (`max_connections`); beyond that a refused one is reset at once.

Refusals are counted and logged at most every 10 seconds (the first at once), so an attack cannot
flood the log. The accounting (`ConnectionGuard`) and the limits' defaults are in `connections.py`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .connections import (
    HEADER_TIMEOUT,
    LINGER,
    MAX_CONNECTIONS,
    MAX_HEAD_BYTES,
    MAX_PER_IP,
    MAX_PIPELINE,
    MAX_URL_BYTES,
    REFUSE_DELAY,
    ConnectionGuard,
    error_response,
)

__all__ = [
    "HEADER_TIMEOUT",
    "LINGER",
    "MAX_CONNECTIONS",
    "MAX_HEAD_BYTES",
    "MAX_PER_IP",
    "MAX_PIPELINE",
    "MAX_URL_BYTES",
    "REFUSE_DELAY",
    "ConnectionGuard",
    "GuardedHttpToolsProtocol",
    "error_response",
    "guarded_protocol",
]


class _PipelineFull(Exception):
    """Raised from a parser callback to stop httptools parsing the rest of what was read."""


class _LingeringClose:
    """The transport as the last accepted request of a connection over the pipelining cap sees it: its
    `close()`, which uvicorn calls after the `connection: close` answer, shuts the write side instead and
    closes `LINGER` later. Closing a socket while the client's requests lie unread in it resets the
    connection, and the answers still in flight were lost (a client got 6 of its 11)."""

    def __init__(self, protocol: GuardedHttpToolsProtocol):
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocol.transport, name)

    def close(self) -> None:
        self._protocol._linger_close()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a `ConnectionGuard` (the `guard` class attribute, set by
    `guarded_protocol`). Overrides only hooks: the parsing and the response path are uvicorn's."""

    guard: ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard_ip: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True  # receiving a request head (or waiting for one)
        self._head_bytes = 0  # bytes received since the current head began (an upper bound on its size)
        self._head_size = 0  # the current head's size as parsed: target + headers
        self._url_size = 0
        self._refused = False
        self._held = False  # refused at accept, waiting `refuse_delay` for the answer
        self._guard_queued = 0  # requests in uvicorn's `pipeline`, as counted by the guard
        self._lost = False
        self._lingering = False  # over the pipelining cap and answered: write side shut, closing soon
        self._running: Any = None  # the request whose answer is in progress (uvicorn keeps no reference)
        self._first_read = True

    # --------------------------------------------------------------- connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        verdict = self.guard.admit(self, self.client[0] if self.client else "")
        if verdict is not None:
            self._hold(*verdict)
            return
        self._arm()

    def _hold(self, status: int, message: str) -> None:
        """Refused (at accept, or a pipelining connection past its address's rate): answer after
        `refuse_delay`, reading nothing meanwhile (see the module doc). Counted out of the caps first, so a
        held connection is never evicted and held again."""
        self._refused = True
        self.guard.release(self)
        self._disarm()
        if self.guard.refuse_delay <= 0:
            self._refuse(status, message)
        elif not self._pause_then(lambda: self._refuse(status, message)):
            self.transport.abort()  # too many held already

    def _pause_then(self, then) -> bool:
        """Read nothing more and call `then` after `refuse_delay`, if the guard has room to hold one more."""
        if self.guard.refuse_delay <= 0 or not self.guard.hold(self._ip()):
            return False
        self._held = True
        self.transport.pause_reading()
        self.loop.call_later(self.guard.refuse_delay, then)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._held:
            self._held = False
            self.guard.unhold()
        self.guard.release(self)
        self._disarm()
        super().connection_lost(exc)

    def evict(self) -> None:
        """Closed to make room for a new connection (this one was idle or slow). One that never finished a
        request is held `refuse_delay` first (see the module doc); an idle keep-alive one closes at once."""
        self._refused = True
        self._disarm()
        if self.cycle is not None or not self._pause_then(self.transport.close):
            self.transport.close()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.guard.header_timeout, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self._refused or self.transport.is_closing():
            return
        busy = self.cycle is not None and not self.cycle.response_complete  # a pipelined answer is on its way
        if self._in_head and self._head_bytes == 0:  # sent nothing at all: just close, as for keep-alive
            self.guard.note("idle connections timed out", self._ip())
            self.guard.release(self)
            self.transport.close()
        elif self._in_head and not busy:
            self.guard.note("slow request heads timed out (408)", self._ip())
            self._refuse(408, f"request head not received within {self.guard.header_timeout:g} s")
        else:  # a body still trickling in, or a slow head behind a pipelined request: no room for an answer
            self.guard.note("slow requests timed out", self._ip())
            self.guard.release(self)
            self.transport.close()

    def _ip(self) -> str:
        return self.client[0] if self.client else ""

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` as JSON, shut the write side and drop the connection after `LINGER`."""
        self._refused = True
        self._disarm()
        self.guard.release(self)
        if self.transport.is_closing():
            return
        self.transport.write(error_response(status, message, self.server_state.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER, self.transport.close)
        else:  # pragma: no cover (TLS transports cannot half-close)
            self.transport.close()

    # --------------------------------------------------------------- parsing
    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped until the connection closes
        if self._first_read:
            self._first_read = False
            if data.count(b"\r\n\r\n") > 1 and not self.guard.take_pipelining(self._ip()):
                self.guard.note("pipelining connections over the per-address rate (429)", self._ip())
                self._hold(429, "too many pipelining connections from your address: try again in a few seconds")
                return
        if self._in_head:
            self._head_bytes += len(data)
            self._arm()  # a keep-alive connection whose next request starts now
        super().data_received(data)
        if self._in_head and not self._refused and self._head_bytes > self.guard.max_head_bytes + 65536:
            self._too_large()  # an unfinished head far over the cap (the exact check is on the parsed size)

    def _too_large(self) -> None:
        self.guard.note("oversized request heads (431)", self._ip())
        self._refuse(431, f"request head too large: at most {self.guard.max_head_bytes // 1024} KB")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_size, self._url_size = True, 0, 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        self._url_size += len(url)
        self._head_size += len(url)
        if self._url_size > self.guard.max_url_bytes:
            self.guard.note("oversized request targets (414)", self._ip())
            self._refuse(414, f"request target too long: at most {self.guard.max_url_bytes // 1024} KB")
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.guard.max_head_bytes:
            self._too_large()
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head, self._head_bytes = False, 0
        self.guard.stop_waiting(self)
        if self.cycle is not None and not self.cycle.response_complete:  # uvicorn will queue this one
            depth = len(self.pipeline) + 1
            if depth > self.guard.max_pipeline or not self.guard.set_queued(self, depth):
                self._pipeline_full()
            super().on_headers_complete()
        else:  # uvicorn starts this one at once
            super().on_headers_complete()
            self._running = self.cycle

    def _pipeline_full(self) -> None:
        """A pipelined request past a cap: answer the request in progress with `connection: close`, drop
        the queued ones unanswered, read nothing more, and stop parsing what was read (see the module doc)."""
        self.guard.note("pipelining connections closed over the queue cap", self._ip())
        self._refused = True
        self._disarm()
        self.flow.pause_reading()
        self.pipeline.clear()  # never started: a pipelining client sends them again on a new connection
        self.guard.set_queued(self, 0)
        running = self._running if self._running is not None else self.cycle  # (always set; kept safe)
        running.keep_alive = False  # uvicorn closes after this answer ...
        running.transport = _LingeringClose(self)  # ... and the close lets the answer arrive first
        self._watch_unread(False)
        raise _PipelineFull  # httptools stops; uvicorn's 400 for the parser error is dropped (refused)

    def _linger_close(self) -> None:
        """Shut the write side (the answers written so far are sent, then FIN), read and drop what the
        client still sends, so that the close `LINGER` later does not reset the connection under them."""
        if self._lingering or self.transport.is_closing():
            return
        if not self.transport.can_write_eof():  # pragma: no cover (TLS transports cannot half-close)
            self.transport.close()
            return
        self._lingering = True
        self.transport.write_eof()
        self.flow.resume_reading()  # dropped by data_received (refused)
        self.loop.call_later(LINGER, self.transport.close)

    def _watch_unread(self, stuck_before: bool) -> None:
        """Every `header_timeout`: a connection that was and still is stuck on a client not reading its
        answers (writing paused, or closed with answers left to send) is reset."""
        self.loop.call_later(max(self.guard.header_timeout, LINGER), self._check_unread, stuck_before)

    def _check_unread(self, stuck_before: bool) -> None:
        if self._lost:
            return
        stuck = self.flow.write_paused or self.transport.is_closing() or self._lingering
        if stuck and stuck_before:
            self.guard.note("pipelining connections reset (answers not read)", self._ip())
            self.transport.abort()
        else:
            self._watch_unread(stuck)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        self._in_head = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._running = self.pipeline[-1][0] if self.pipeline else None  # the one uvicorn starts next
        super().on_response_complete()  # starts the next queued request, if any, and resumes reading
        self.guard.set_queued(self, len(self.pipeline))
        if (self.pipeline or (self._refused and not self._lingering)) and not self.transport.is_closing():
            self.flow.pause_reading()  # read nothing more while requests wait for their turn
        if not self._refused and not self.transport.is_closing() and self.timeout_keep_alive_task is not None:
            self.guard.start_waiting(self)  # idle keep-alive: evictable until its next request head ends

    def send_400_response(self, msg: str) -> None:
        if self._refused:
            return
        self.guard.note("malformed requests (400)", self._ip())
        self._refuse(400, "malformed HTTP request")


class _CountedElsewhere(logging.Filter):
    """uvicorn logs a warning per malformed request (the guard counts those and reports them every 10 s
    instead) and two per upgrade request (answered as plain HTTP: there are no WebSocket routes), so a
    flood of either would flood the log."""

    PREFIXES = ("Invalid HTTP request received", "Unsupported upgrade request", "No supported WebSocket library")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to hand uvicorn (`http=`), bound to `guard`."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _CountedElsewhere) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_CountedElsewhere())
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"guard": guard})
