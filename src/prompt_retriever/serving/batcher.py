"""`QueryBatcher`: concurrent requests run together in batches, off the event loop. Generic: it knows
nothing of searching; the API hands it `PromptRetriever.search_requests`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def _below_event_loop() -> None:
    """Batch threads run at a lower CPU priority than the event loop, so with every core busy encoding,
    the loop still parses requests and sends answers on time (Linux: a per-thread nice value)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: plain priority
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + 5))


class QueryBatcher:
    """Runs concurrent requests together, off the event loop.

    One worker takes the first waiting request, gathers whatever else arrives within `max_wait` seconds
    (up to `max_batch`), and hands them to `run(items) -> results` in one call in a thread. Idle, a
    request waits `max_wait` at most; under load batches grow on their own. `workers` batches run at
    once (one per core when each uses one inference thread), never one thread per request.
    """

    def __init__(
        self,
        run: Callable[[list[Any]], Sequence[Any]],
        max_batch: int = 32,
        max_wait: float = 0.002,
        workers: int = 1,
    ):
        self.run_fn, self.max_batch, self.max_wait = run, max_batch, max_wait
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="batch", initializer=_below_event_loop)
        self._workers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> (queue, tasks)
        self.batches = 0

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        entry = self._workers.get(loop)
        if entry is None or any(t.done() for t in entry[1]):  # one queue and worker pool per event loop
            queue: asyncio.Queue = asyncio.Queue()
            entry = (queue, [loop.create_task(self._run(queue)) for _ in range(self.workers)])
            self._workers[loop] = entry
        fut = loop.create_future()
        await entry[0].put((item, fut))
        return await fut

    async def _run(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            try:
                results = await loop.run_in_executor(self._pool, self.run_fn, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch of {len(batch)} requests got {len(results)} results")
            except Exception as exc:  # every waiting request gets the error, the worker lives on
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
