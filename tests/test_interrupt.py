"""Runs killed with SIGKILL mid-write leave the previous file intact, and the next run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

DATA = Path(__file__).parent / "data"


def spawn(code: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode()[-2000:])
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)


def test_killed_writer_never_leaves_a_torn_file(tmp_path):
    size = 8 * 1024 * 1024
    proc = spawn(
        f"""
        from prompt_retriever.fileio import atomic_write_bytes
        i = 0
        while True:
            atomic_write_bytes("data.bin", (b"a" if i % 2 else b"b") * {size})
            i += 1
        """,
        tmp_path,
    )
    wait_for(tmp_path / "data.bin", proc)
    for delay in (0.01, 0.05, 0.13, 0.21):
        time.sleep(delay)
        data = (tmp_path / "data.bin").read_bytes()
        assert len(data) == size and data in (b"a" * size, b"b" * size)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    data = (tmp_path / "data.bin").read_bytes()
    assert len(data) == size and data in (b"a" * size, b"b" * size)


def test_killed_index_save_is_detected(tmp_path, small_prompts, small_retriever):
    from prompt_retriever.search.retriever import IndexLoadError, PromptRetriever

    folder = tmp_path / "idx"
    small_retriever.save(folder)
    proc = spawn(
        f"""
        from prompt_retriever.corpus import load_corpus
        from prompt_retriever.search.retriever import PromptRetriever
        prompts = load_corpus({str(DATA / "small_corpus.txt")!r})
        big = PromptRetriever().index(prompts)
        small = PromptRetriever().index(prompts[:3])
        open("ready", "w").close()
        i = 0
        while True:
            (big if i % 2 else small).save({str(folder)!r})
            i += 1
        """,
        tmp_path,
    )
    wait_for(tmp_path / "ready", proc)
    outcomes = set()
    for delay in (0.003, 0.011, 0.02, 0.037, 0.05):
        time.sleep(delay)
        try:
            r = PromptRetriever.load(folder)
            assert len(r) in (3, 8) and r.embeddings.shape[0] == len(r)  # complete and consistent
            outcomes.add("loaded")
        except IndexLoadError as exc:
            assert "checksum mismatch" in str(exc) or "does not match" in str(exc)
            outcomes.add("refused")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert outcomes  # every read either loaded a consistent index or refused a half-written one


def test_corrupt_cached_index_is_rebuilt_with_a_warning(small_prompts, caplog, tmp_path, monkeypatch):
    import logging

    from prompt_retriever.search.indexcache import cached_retriever

    monkeypatch.setenv("PROMPT_RETRIEVER_CACHE_DIR", str(tmp_path))
    first = cached_retriever(small_prompts)
    folder = next((tmp_path / "indexes").iterdir())
    (folder / "prompts.jsonl").write_text("truncated")
    with caplog.at_level(logging.WARNING):
        again = cached_retriever(small_prompts)
    assert "cached index unusable, rebuilding" in caplog.text
    assert [h.prompt.id for h in again.search("lighthouse", k=3)] == [
        h.prompt.id for h in first.search("lighthouse", k=3)
    ]


def test_pipeline_killed_mid_stage_resumes_from_that_stage(tmp_path):
    from rich.console import Console

    from prompt_retriever.pipeline import PipelineConfig, run_pipeline
    from prompt_retriever.training import TrainConfig

    corpus = DATA / "golden12.txt"
    out = tmp_path / "run"
    proc = spawn(
        f"""
        from pathlib import Path
        from rich.console import Console
        from prompt_retriever.pipeline import PipelineConfig, run_pipeline
        from prompt_retriever.training import TrainConfig
        run_pipeline(PipelineConfig(corpus=[Path({str(corpus)!r})], out=Path({str(out)!r}), test=0.25, dev=0.25,
                     train=TrainConfig(max_steps=40, batch_size=4, hard_negatives=1, max_rows=16),
                     n_bootstrap=200, n_permutations=200, plots=False, reference=False), Console(quiet=True))
        """,
        tmp_path,
    )
    wait_for(out / "stages" / "base-eval.json", proc, timeout=240)
    time.sleep(1.0)  # inside the training stage now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "stages" / "train.json").exists()
    res = run_pipeline(
        PipelineConfig(
            corpus=[corpus],
            out=out,
            test=0.25,
            dev=0.25,
            train=TrainConfig(max_steps=40, batch_size=4, hard_negatives=1, max_rows=16),
            n_bootstrap=200,
            n_permutations=200,
            plots=False,
            reference=False,
        ),
        Console(quiet=True),
    )
    assert res["skipped"] == ["corpus", "queries", "split", "base-eval"]
    assert res["ran"] == ["train", "compare", "choose", "report"]
    assert (out / "model" / "model.safetensors").exists()
    assert not list(out.glob(".model.training-*"))  # the killed run's work folder was cleaned up
