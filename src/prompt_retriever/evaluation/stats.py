"""Uncertainty for per-query metric values: bootstrap CIs, paired randomization tests, Holm correction.

All functions are seeded and vectorised with numpy; inputs are per-query values in the same query
order for paired functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float
    hi: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "ci_low": self.lo, "ci_high": self.hi}


def bootstrap_ci(values: Sequence[float], *, n_resamples: int = 2000, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """Mean with a percentile bootstrap (1 - alpha) CI over queries."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return Estimate(0.0, 0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(x.mean()), float(lo), float(hi))


def paired_randomization_test(
    a: Sequence[float], b: Sequence[float], *, n_resamples: int = 10000, seed: int = 0
) -> float:
    """Two-sided p-value that mean(a - b) = 0, by random sign flips of the paired differences."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size == 0 or not np.any(d):
        return 1.0
    rng = np.random.default_rng(seed)
    observed = abs(d.mean())
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, d.size))
    null = np.abs((signs * d).mean(axis=1))
    return float((np.sum(null >= observed - 1e-12) + 1) / (n_resamples + 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class Comparison:
    metric: str
    system: str
    baseline: str
    diff: Estimate
    p_value: float
    p_holm: float

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "system": self.system,
            "baseline": self.baseline,
            "diff": self.diff.to_dict(),
            "p_value": self.p_value,
            "p_holm": self.p_holm,
        }
