"""`timed_call`: run an ASGI app for one request and report the status it answered with and how long it
took, to a callback that runs even when the app raised (then the status is 500). Shared by the access
log (`middleware.AccessLog`) and the request metrics (`metrics.RequestMetrics`).

>>> await timed_call(app, scope, receive, send, lambda status, seconds: print(status))  # doctest: +SKIP
200
"""

from __future__ import annotations

import time
from collections.abc import Callable


async def timed_call(app, scope, receive, send, done: Callable[[int, float], None]) -> None:
    """`await app(scope, receive, send)`, then `done(status, seconds)` (status 500 if none was sent)."""
    t0 = time.perf_counter()
    status = [500]

    async def send_status(message):
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        await send(message)

    try:
        await app(scope, receive, send_status)
    finally:
        done(status[0], time.perf_counter() - t0)
