"""`serve --runs DIR`: serve the current run of a runs folder (`search.versions`) and switch when it
changes. A thread reads `DIR/current.json` about once a second; when it names another run than the one
served, that run is loaded beside the one serving and swapped in (`LiveState.reload`), so searches
keep being answered throughout. A run that cannot be loaded is logged and the old one keeps serving;
the switch is tried again after `interval` seconds, then after twice as long each time, up to
`MAX_RETRY_SECONDS` (a new promote or rollback is tried at once). While the run served is not the current
one, `/metrics` says so (`prompt_retriever_run_served_is_current` 0) and `/api/info` names the current
run (`current_run`).

>>> watcher = RunsWatcher(app.state.live, Path("runs"))   # doctest: +SKIP
>>> watcher.start()                                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from ..errors import PromptRetrieverError
from ..search.retriever import PromptRetriever
from ..search.versions import current_run_dir, read_current
from .live import LiveState, Loader

log = logging.getLogger("prompt_retriever.serve")
POLL_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0  # the longest wait between two tries of a switch that failed


def current_loader(runs: Path, loader: Loader) -> Loader:
    """`loader`, with None (SIGHUP, a reload naming no run) meaning the current run of `runs`."""

    def load(run_dir: Path | None) -> PromptRetriever:
        return loader(run_dir if run_dir is not None else current_run_dir(runs))

    return load


class RunsWatcher(threading.Thread):
    """Switches `live` to the current run of `runs` whenever `current.json` names another one than the
    run served (checked every `interval` seconds until `stop`)."""

    def __init__(self, live: LiveState, runs: Path, *, interval: float = POLL_SECONDS):
        super().__init__(name="runs-watcher", daemon=True)
        self.live, self.runs, self.interval = live, Path(runs), interval
        self._stopped = threading.Event()
        self._seen: tuple | None = None  # the last change of current.json acted on
        self._problem: str | None = None  # the last problem logged reading current.json
        self._failed: tuple | None = None  # the change whose switch failed last, to be tried again
        self._retry_at = 0.0  # when (time.monotonic()) to try it again
        self._backoff = interval

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.check()

    def check(self) -> bool:
        """Switch if current.json names another run than the one served; True if it switched."""
        try:
            current = read_current(self.runs)
        except (PromptRetrieverError, OSError) as exc:
            if str(exc) != self._problem:  # logged once, not every second
                self._problem = str(exc)
                log.error("cannot read the current run, still serving %s: %s", self.live.state.run_name, exc)
            return False
        self._problem = None
        if current is None:
            return False
        key = (current.run, current.seq, current.at)
        if key == self._seen or current.run == self.live.state.run_name:
            self._seen, self._failed = key, None
            return False
        if key == self._failed and time.monotonic() < self._retry_at:
            return False
        try:
            self.live.reload(self.runs / current.run)
        except Exception as exc:  # noqa: BLE001 - reported, never fatal to the server
            self._backoff = min(2 * self._backoff, MAX_RETRY_SECONDS) if key == self._failed else self.interval
            self._failed, self._retry_at = key, time.monotonic() + self._backoff
            log.error(
                "cannot switch to %s, still serving %s (trying again in %g s): %s",
                current.run,
                self.live.state.run_name,
                self._backoff,
                exc,
            )
            return False
        self._seen, self._failed = key, None
        return True


def watch_runs(live: LiveState, runs: Path, *, interval: float = POLL_SECONDS) -> tuple:
    """Start-up and shut-down hooks that start and stop a `RunsWatcher` of `runs` for `live`."""
    watcher = RunsWatcher(live, runs, interval=interval)
    return watcher.start, watcher.stop
