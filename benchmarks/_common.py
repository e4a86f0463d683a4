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


def emit(name: str, result: dict) -> dict:
    """Print one JSON line and write it to benchmarks/results/<name>.json (atomically)."""
    from prompt_retriever.fileio import atomic_write_json

    row = {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
        "env": machine(),
    }
    print(json.dumps(row))
    atomic_write_json(RESULTS / f"{name}.json", row)
    return row


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))
