"""Shared helpers for benchmark scripts: machine facts and writing one JSON result line."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def machine() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }


SIMD_PREFIXES = ("sse", "ssse", "avx", "fma", "f16c", "amx")


def cpu_info() -> dict:
    """The CPU model and its SIMD flags (/proc/cpuinfo), which decide the int8 kernels ONNX Runtime uses."""
    model, flags = None, []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.split()
    except OSError:
        pass
    simd = [f for f in flags if f.startswith(SIMD_PREFIXES)]
    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = None
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "simd": simd,
        "vnni": any("vnni" in f for f in simd),
        "onnxruntime": ort,
    }


def emit(name: str, result: dict) -> dict:
    """Print one JSON line and write it to benchmarks/results/<name>.json (atomically), with the machine
    facts (`env`) and, unless the result has them already, the CPU model and SIMD flags (`cpu`)."""
    from prompt_retriever.fileio import atomic_write_json

    row = {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
        "env": machine(),
    }
    row.setdefault("cpu", cpu_info())
    print(json.dumps(row))
    atomic_write_json(RESULTS / f"{name}.json", row)
    return row


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def wait_ready(base: str, proc, log: Path, what: str = "", every: float = 0.5, limit: float = 900.0) -> float:
    """Poll `base`/readyz until it answers 200 (seconds taken); exit with the end of the server's `log`
    when the process `proc` ends first or `limit` seconds pass. `what`: the server, named in the error."""
    import time

    import httpx

    t0 = time.monotonic()
    while True:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() - t0 > limit:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise SystemExit(f"server did not start{f' ({what})' if what else ''}: {log}\n{tail}")
        time.sleep(every)
