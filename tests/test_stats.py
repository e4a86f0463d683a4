from __future__ import annotations

import numpy as np
import pytest

from prompt_retriever.evaluation.stats import bootstrap_ci, holm, paired_randomization_test


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    x = rng.random(200).tolist()
    a = bootstrap_ci(x, seed=3)
    b = bootstrap_ci(x, seed=3)
    assert a == b
    assert a.lo < a.mean < a.hi
    assert a.mean == pytest.approx(float(np.mean(x)))
    # roughly mean +- 1.96 * sd / sqrt(n)
    half = 1.96 * np.std(x) / np.sqrt(len(x))
    assert (a.hi - a.lo) / 2 == pytest.approx(half, rel=0.15)
    wider = bootstrap_ci(x[:20], seed=3)
    assert wider.hi - wider.lo > a.hi - a.lo
    assert bootstrap_ci([]).mean == 0.0
    const = bootstrap_ci([0.5] * 10)
    assert const.lo == const.hi == 0.5


def test_randomization_test():
    rng = np.random.default_rng(1)
    a = rng.random(100)
    assert paired_randomization_test(a, a) == 1.0
    better = a + 0.2
    p = paired_randomization_test(better, a, n_resamples=2000, seed=0)
    assert p == pytest.approx(1 / 2001)
    noise = a + rng.normal(0, 0.01, 100)
    assert paired_randomization_test(noise, a, seed=0) > 0.05
    assert paired_randomization_test(noise, a, seed=0) == paired_randomization_test(noise, a, seed=0)


def test_holm_worked_example():
    # sorted: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
