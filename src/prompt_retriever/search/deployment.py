"""A deployable run: `run_dir/system.json` (which system answers, how it was chosen, its numbers) beside
the run's index and model, and the checks that load one exactly as it was measured
(`PromptRetriever.save_run` / `from_run` use these).

A run names every file it uses by a path relative to its folder, so it works from any current folder and
moves as a whole; reading one refuses a forged field, a path that leads out of the run, and a model,
index or corpus that changed since the system was chosen.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path, PureWindowsPath

from ..corpus import Prompt, corpus_fingerprint
from ..encoding.encoder import BACKENDS, DEFAULT_TEMPLATE, backend_fingerprint, check_template
from ..encoding.models import find_bundled, looks_like_path, model_fingerprint, resolve_model, weights_fingerprint
from ..errors import IndexLoadError, InputError
from ..fileio import atomic_write_json
from .persistence import MAX_NAME_CHARS, MAX_PROMPT_ROW_BYTES, parse_prompts, read_limited
from .systems import SystemSpec, system_problem

SYSTEM_FORMAT = 1
# a system whose fusion is not the default (`spec.FUSIONS`): versions before the field refuse it rather
# than serve it as the whole-corpus fusion
SYSTEM_FORMAT_FUSION = 2


def system_format(fusion: str) -> int:
    """The system.json format a system with this fusion is written in (and must be read in)."""
    return SYSTEM_FORMAT if fusion == "corpus" else SYSTEM_FORMAT_FUSION


SYSTEM_FILE = "system.json"
MAX_SYSTEM_BYTES = 4 << 20
MAX_LABEL_CHARS = 1000


# ---------------------------------------------------------------------------------------------- writing
def deploy_model(model: str, run_dir: Path) -> tuple[str, Path | None]:
    """How a run names `model`, and the model folder its index records (None: a bundled model or a hub
    id, named as it is). A local folder outside the run is copied into `run_dir/models/<name>/` first:
    the run holds every file it names, by a path relative to it."""
    resolved = resolve_model(model)
    if not resolved.local or resolved.bundled:
        return model, None
    folder, root = Path(resolved.location), run_dir.resolve()
    if not folder.is_relative_to(root):
        folder = copy_model(folder, run_dir / "models")
    name = folder.resolve().relative_to(root).as_posix()
    return name, run_dir / name


def copy_model(folder: Path, models_dir: Path) -> Path:
    """`folder` copied (files, not links) into `models_dir/<its name>`, kept if an identical copy is there."""
    target = models_dir / folder.name
    if target.is_dir() and not target.is_symlink() and model_fingerprint(str(target)) == model_fingerprint(str(folder)):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    work = models_dir / f".{folder.name}.copy-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(folder, work)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    work.rename(target)
    return target


def write_system(run_dir: Path, record: dict) -> Path:
    """`run_dir/system.json` holding `record` with its format (written last: it makes the run deployable)."""
    atomic_write_json(run_dir / SYSTEM_FILE, {"format": system_format(record.get("fusion", "corpus")), **record})
    return run_dir / SYSTEM_FILE


# ---------------------------------------------------------------------------------------------- reading
def _is_score(value: object) -> bool:
    """A metric value as a run records it: a finite number in [0, 1], or null (not measured)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0)


def system_info_problem(info: object) -> str | None:
    """What is wrong with a system.json's content (None: nothing): every field a run's loader, `describe`,
    the server and `evaluate --run` use, checked for type and range."""
    if not isinstance(info, dict):
        return f"not a system description (a JSON object expected, got {type(info).__name__})"
    fmt = info.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt not in (SYSTEM_FORMAT, SYSTEM_FORMAT_FUSION):
        return f"format {fmt!r:.40}, this version reads {SYSTEM_FORMAT} and {SYSTEM_FORMAT_FUSION}"
    for key in ("kind", "model", "model_fingerprint", "corpus_fingerprint", "index", "backend", "template"):
        value = info.get(key)
        if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS or "\x00" in value:
            return f"{key} {value!r:.60}: a non-empty string expected"
    if problem := system_problem(info):
        return problem
    want = system_format(info.get("fusion", "corpus"))
    if fmt != want:  # the format says whether a fusion other than the corpus fusion may be in the file
        return f"format {fmt}: a system with fusion {info.get('fusion', 'corpus')!r} is written as format {want}"
    if info["backend"] not in BACKENDS:
        return f"backend {info['backend']!r:.40}: one of {', '.join(BACKENDS)} expected"
    try:
        check_template(info["template"])
    except InputError as exc:
        return f"template: {exc}"
    for key in ("label", "name"):
        value = info.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_LABEL_CHARS):
            return f"{key} {value!r:.60}: a string of at most {MAX_LABEL_CHARS} characters expected"
    for key in ("dev_ndcg@10", "test_ndcg@10"):
        if not _is_score(info.get(key)):
            return f"{key} {info.get(key)!r:.40}: a number in [0, 1] or null expected"
    for key in ("dev", "test"):
        value = info.get(key)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(k, str) and _is_score(v) for k, v in value.items())
        ):
            return f"{key} {value!r:.60}: an object of numbers in [0, 1] expected"
    for key in ("chosen_on", "reference"):
        if info.get(key) is not None and not isinstance(info[key], dict):
            return f"{key}: an object expected"
    return None


def read_system(run_dir: str | Path) -> dict:
    """`run_dir/system.json`, read bounded (a regular file of at most 4 MB) and checked field by field;
    one clear IndexLoadError when the folder is not a deployable run or the file is forged. Runs written
    before `index`, `backend` and `template` were recorded get their defaults."""
    d = Path(run_dir)
    path = d / SYSTEM_FILE
    if not path.exists() and not path.is_symlink():
        raise IndexLoadError(
            f"{d}: not a deployable run (no {SYSTEM_FILE}); `prompt-retriever pipeline --out {d}` makes one"
        )
    try:
        info = json.loads(read_limited(path, MAX_SYSTEM_BYTES).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IndexLoadError(f"{path}: corrupt ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if isinstance(info, dict):
        info = {"index": "index", "backend": "torch", "template": DEFAULT_TEMPLATE, **info}
    if problem := system_info_problem(info):
        raise IndexLoadError(f"{path}: {problem}")
    return info


def _resolved(path: Path, what: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop (RuntimeError before 3.13)
        raise IndexLoadError(f"{path}: {what} cannot be resolved ({type(exc).__name__})") from exc


def inside_run(d: Path, rel: str, what: str) -> Path:
    """`d / rel`, checked to be a path inside the run folder `d` (relative, no `..`, no symlink out)."""
    if Path(rel).is_absolute() or PureWindowsPath(rel).drive or ".." in Path(rel).parts:
        raise IndexLoadError(
            f"{d}: {what} {rel!r:.200} is outside the run: a run names its files by paths relative to its folder"
        )
    target = d / rel
    if not _resolved(target, what).is_relative_to(_resolved(d, "the run folder")):
        raise IndexLoadError(f"{d}: {what} {rel!r:.200} leads outside the run (a symlink out of it)")
    return target


def _run_model(d: Path, name: str) -> str:
    """The model a run names: a folder inside the run, a bundled model or a hub id; never a folder
    elsewhere (an absolute path, `..`, a symlink out of the run, a folder of the current directory)."""
    try:
        in_run = (d / name).exists() or (d / name).is_symlink()
        if in_run or Path(name).is_absolute() or ".." in Path(name).parts:
            folder = inside_run(d, name, "model")
            if not folder.is_dir():
                raise IndexLoadError(f"{d}: model {name!r:.200} is not a model folder")
            return str(folder)
        if find_bundled(name) is not None:
            return name
        if looks_like_path(name) or resolve_model(name).local:  # a hub id must not name a folder here
            raise IndexLoadError(
                f"{d}: model {name!r:.200} is not a model folder inside the run (a folder outside the run is not "
                "used), a bundled model or a hub id"
            )
    except OSError as exc:  # a name the file system refuses (too long, ...)
        raise IndexLoadError(f"{d}: model {name!r:.200} is not a usable path ({type(exc).__name__})") from exc
    return name


def run_model(d: Path, info: dict) -> str:
    """The model the run `d` (its system.json `info`) names, checked before anything is loaded to be the
    model its numbers were measured with (weights, configuration and tokenizer, for its backend)."""
    model = _run_model(d, info["model"])
    recorded, now = info["model_fingerprint"], backend_fingerprint(model, info["backend"])
    if now != recorded:
        if recorded.split("+")[0] == weights_fingerprint(model):
            raise IndexLoadError(
                f"{d}: this run was made by an older version of prompt-retriever, whose model fingerprint "
                "covers the weights only, not the model's configuration and tokenizer; rerun the pipeline "
                f"(`prompt-retriever pipeline --out {d}`) to choose and save the system again"
            )
        raise IndexLoadError(
            f"{d}: the model changed since this system was chosen ({recorded} -> {now}: its weights, "
            "configuration or tokenizer); rerun the pipeline"
        )
    return model


def check_run_index(
    d: Path,
    info: dict,
    *,
    fingerprint: str,
    template: str,
    backend: str,
    prompts: Sequence[Prompt],
    system: SystemSpec,
    drift_since: str | None = None,
    removed: int = 0,
) -> None:
    """IndexLoadError unless the index loaded from the run `d` (its model `fingerprint`, `template`,
    `backend`, `prompts` and `system`) is the one system.json (`info`) describes, and the run's own
    `corpus.jsonl` (when there) still holds the corpus the system was chosen on. The index may hold
    another corpus only through live updates: its drift record (`search.live`) then starts from the
    chosen corpus (`drift_since`; `removed`: prompts removed since)."""
    if fingerprint != info["model_fingerprint"]:
        raise IndexLoadError(f"{d}: the index was built with another model than system.json names; rerun the pipeline")
    for what, mine, theirs in (("template", template, info["template"]), ("backend", backend, info["backend"])):
        if mine != theirs:
            raise IndexLoadError(
                f"{d}: system.json and the index disagree about the {what} ({theirs!r:.80} vs {mine!r:.80}); "
                "rerun the pipeline"
            )
    chosen = info["corpus_fingerprint"]
    if drift_since != chosen and corpus_fingerprint(prompts) != chosen:
        raise IndexLoadError(
            f"{d}: the index holds another corpus than the one this system was chosen on, and no record of "
            "live updates (`prompt-retriever index add/remove`) says how; rerun the pipeline"
        )
    corpus = d / "corpus.jsonl"
    if corpus.exists() or corpus.is_symlink():  # read bounded: at most what the chosen corpus can take
        blob = read_limited(corpus, (len(prompts) + removed) * MAX_PROMPT_ROW_BYTES + 4096)
        if corpus_fingerprint(parse_prompts(corpus, blob)) != chosen:
            raise IndexLoadError(
                f"{d}: the run's corpus changed since this system was chosen; rerun the pipeline to choose again"
            )
    if system != SystemSpec.from_dict(info):
        raise IndexLoadError(f"{d}: system.json and the index disagree about the system")
