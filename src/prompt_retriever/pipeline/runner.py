"""The stage cache: a `Stage` is a cache key, outputs and work; the `Runner` runs one or skips it.

Every stage writes its outputs atomically and then a state file `stages/<name>.json` holding a hash of
its inputs. A stage whose inputs are unchanged and whose outputs exist is skipped, so an interrupted
run resumes at the first unfinished stage and a second run is fast. `force` reruns everything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ..corpus import bundled_corpus_paths
from ..fileio import atomic_write_json, sha256_file, sha256_text
from .config import Context, PipelineConfig


class StopPipeline(Exception):
    """Raised after the stage `--until` names; its argument is that stage's name."""


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its cache key (inputs), its outputs (paths in the run folder) and its work."""

    name: str
    key: Callable[[PipelineConfig, Context], dict]
    outputs: tuple[str, ...]
    run: Callable[[PipelineConfig, Context], dict]  # does the work, returns the stage's record
    disabled: Callable[[PipelineConfig], str | None] | None = None  # why the stage is not run at all, if so
    then: Callable[[PipelineConfig, Context], None] | None = None  # after the stage, whether it ran or was skipped


def stage_path(out: Path, name: str) -> Path:
    """Where a run records a finished stage: its input key, inputs and result."""
    return out / "stages" / f"{name}.json"


def other_corpus_run(out: Path, files: Sequence[Path]) -> str | None:
    """The corpus of the pipeline run in `out` (its corpus stage record) when it is made from other files
    than `files`, in words; None when there is no run there yet or it is a run of `files` (even edited since:
    the same paths) or of copies of them (the same contents)."""
    try:
        recorded = json.loads(stage_path(out, "corpus").read_text(encoding="utf-8"))["inputs"]["files"]
        old = [(Path(path), digest) for path, digest in recorded]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no run, or a record the pipeline itself will not trust either
    if {p.resolve() for p, _ in old} == {Path(f).resolve() for f in files}:
        return None
    if sorted(d for _, d in old) == sorted(sha256_file(f) for f in files if Path(f).is_file()):
        return None
    bundled = {p.resolve() for p in bundled_corpus_paths()}
    return "the bundled corpus" if {p.resolve() for p, _ in old} == bundled else ", ".join(p.name for p, _ in old)


class Runner:
    """Runs the stages named `names` (in that order) in the run folder `out`, or skips those whose inputs
    are unchanged; stops after `until`."""

    def __init__(
        self, out: Path, console: Console, names: Sequence[str], force: bool = False, until: str | None = None
    ):
        self.out = out
        self.console = console
        self.names = tuple(names)
        self.force = force
        self.until = until
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def _number(self, name: str) -> str:
        return f"{self.names.index(name) + 1}/{len(self.names)}"

    def disabled(self, name: str, reason: str) -> None:
        """A stage that does not run at all in this run, and why."""
        self.console.print(f"[dim]{self._number(name)} {name}: {reason}, skipped[/]")

    def stage(self, name: str, key: dict, outputs: Sequence[Path], fn: Callable[[], dict]) -> dict:
        state_path = stage_path(self.out, name)
        key_hash = sha256_text(json.dumps(key, sort_keys=True, default=str))
        if not self.force and state_path.exists() and all(p.exists() for p in outputs):
            try:
                state = json.loads(state_path.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("key") == key_hash:
                self.console.print(f"[dim]{self._number(name)} {name}: inputs unchanged, skipped[/]")
                self.skipped.append(name)
                return self._after(name, state["result"])
        self.console.print(f"[bold]{self._number(name)} {name}[/] …")
        t0 = time.perf_counter()
        result = fn()
        secs = time.perf_counter() - t0
        atomic_write_json(
            state_path, {"stage": name, "key": key_hash, "inputs": key, "result": result, "seconds": round(secs, 2)}
        )
        self.console.print(f"  [green]done[/] in {secs:.1f} s")
        self.ran.append(name)
        return self._after(name, result)

    def _after(self, name: str, result: dict) -> dict:
        if self.until == name:
            raise StopPipeline(name)
        return result
