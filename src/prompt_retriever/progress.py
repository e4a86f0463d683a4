"""Progress display: quiet by default, at most one bar at a time, and the libraries' own bars silenced.

- `task(description, unit=..., enabled=...)` is a context manager yielding a `Bar`. Disabled (the
  library default), the bar is a no-op. A task opened while another bar is showing adds its work to that
  bar when it counts the same unit and shows nothing otherwise: a pipeline stage opens one "embedding"
  task and every encode call inside it advances that one bar, instead of one bar per call.
- A bar starts on its first unit of work (a task with nothing to do prints nothing) and is drawn on the
  console set with `display(console)` (the CLI's own), else on stderr. On a terminal it updates in place
  with an ETA; written to a file or pipe, only its final state is printed, as one line.
- `quiet_libraries()` turns off, for its duration, the per-call progress bars of transformers
  ("Loading weights", "Writing model shards"), huggingface_hub and sentence-transformers' trainer
  ("Computing widget examples"). Python warnings and logging are left alone.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

_lock = threading.RLock()
_console: Console | None = None  # where bars are drawn (`display`); None: stderr
_showing: Bar | None = None  # the one bar on screen


class Bar:
    """One progress bar: `grow` adds to the total, `advance` to the work done, `update` sets either and
    the text after the bar (`info`, e.g. the latest loss)."""

    def __init__(self, description: str = "", unit: str = "", total: int = 0, console: Console | None = None):
        self.description = description
        self.unit = unit
        self.total = total
        self.completed = 0
        self.info = ""
        self._console = console
        self._progress = None
        self._task = None

    @property
    def active(self) -> bool:
        return True

    def grow(self, n: int) -> None:
        with _lock:
            self.total += n
            self._refresh()

    def advance(self, n: int = 1) -> None:
        with _lock:
            self.completed += n
            self._refresh()

    def update(self, *, completed: int | None = None, total: int | None = None, info: str | None = None) -> None:
        with _lock:
            if completed is not None:
                self.completed = completed
            if total is not None:
                self.total = total
            if info is not None:
                self.info = info
            self._refresh()

    def _refresh(self) -> None:
        if self._progress is None:
            if self.total <= 0:
                return  # nothing to show yet
            self._start()
        self._progress.update(self._task, total=self.total, completed=self.completed, info=self.info)

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("  {task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            _time_column(),
            console=self._console or Console(stderr=True, emoji=False),
        )
        self._task = self._progress.add_task(self.description, total=self.total, unit=self.unit, info=self.info)
        self._progress.start()

    def close(self) -> None:
        with _lock:
            if self._progress is not None:
                self._progress.update(self._task, done=True)
                self._progress.stop()
                self._progress = None


class _NullBar(Bar):
    @property
    def active(self) -> bool:
        return False

    def _refresh(self) -> None:
        pass


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


_time_column_class = None


def _time_column():
    """Elapsed time, while running the ETA from the recent speed (rich's own ETA column stays at 0 for good
    once a growing total has been reached), then the bar's `info`."""
    global _time_column_class
    if _time_column_class is None:
        from rich.progress import ProgressColumn
        from rich.text import Text

        class TimeColumn(ProgressColumn):
            def render(self, task) -> Text:
                text = _hms(task.elapsed or 0)
                remaining = (task.total or 0) - task.completed
                if not task.fields.get("done") and remaining > 0 and task.speed:
                    text += f", ETA {_hms(remaining / task.speed)}"
                info = task.fields.get("info")
                return Text.assemble((text, "progress.elapsed"), f"  {info}" if info else "")

        _time_column_class = TimeColumn
    return _time_column_class()


@contextmanager
def task(description: str, *, unit: str = "", total: int = 0, enabled: bool = True) -> Iterator[Bar]:
    """A progress bar for the block (see the module's docstring); `enabled=False`: a no-op bar."""
    global _showing
    if not enabled:
        yield _NullBar()
        return
    with _lock:
        outer = _showing
        if outer is None:
            bar = _showing = Bar(description, unit, 0, _console)
    if outer is not None:  # one bar at a time: join it when counting the same thing, else stay silent
        if outer.unit == unit:
            outer.grow(total)
            yield outer
        else:
            yield _NullBar()
        return
    try:
        bar.grow(total)
        yield bar
    finally:
        with _lock:
            bar.close()
            _showing = None


def showing(unit: str) -> bool:
    """Whether a bar counting `unit` is showing (work of that unit would join it)."""
    with _lock:
        return _showing is not None and _showing.unit == unit


@contextmanager
def display(console: Console) -> Iterator[None]:
    """Draw bars on `console` (the one the caller prints its own lines on) for the block."""
    global _console
    with _lock:
        before, _console = _console, console
    try:
        yield
    finally:
        with _lock:
            _console = before


# ----------------------------------------------------------------------------- the libraries' own bars

_quiet_depth = 0
_undo: dict[str, Callable[[], None]] = {}  # library -> how to turn its bars back on


def _silence(downloads: bool) -> None:
    """Turn off the bars of the libraries imported by now and not yet silenced; `_undo` restores them."""
    if "transformers" in sys.modules and "transformers" not in _undo:
        from transformers.utils import logging as tf_logging

        if tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            _undo["transformers"] = tf_logging.enable_progress_bar
    if not downloads and "huggingface_hub" in sys.modules and "huggingface_hub" not in _undo:
        from huggingface_hub import utils as hf_utils

        if not hf_utils.are_progress_bars_disabled():
            hf_utils.disable_progress_bars()
            _undo["huggingface_hub"] = hf_utils.enable_progress_bars
    # sentence-transformers' trainer draws "Computing widget examples" with a plain tqdm, without a switch
    card = sys.modules.get("sentence_transformers.base.model_card")
    original: Any = getattr(card, "tqdm", None)
    if original is not None and "model_card" not in _undo:
        card.tqdm = _disabled(original)
        _undo["model_card"] = lambda: setattr(card, "tqdm", original)


def _disabled(tqdm_cls):
    def quiet_tqdm(*args, **kwargs):
        kwargs["disable"] = True
        return tqdm_cls(*args, **kwargs)

    return quiet_tqdm


@contextmanager
def quiet_libraries(*, downloads: bool = False) -> Iterator[None]:
    """No per-call progress bars from transformers, huggingface_hub and sentence-transformers' trainer in
    the block (for the libraries imported by the time it is entered); with `downloads`, huggingface_hub's
    download bars stay (a model download takes minutes). Nested and concurrent blocks turn the bars back
    on once, when the last one ends. Warnings and log messages are not touched."""
    global _quiet_depth
    with _lock:
        _silence(downloads)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                for undo in reversed(list(_undo.values())):
                    undo()
                _undo.clear()
