import numpy as np
import pytest

from harness.report.stats import diff_ci, holm, mean_ci, paired_test, relative_improvement


def test_holm_by_hand():
    # sorted p: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> monotone 0.06)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_planted_difference_is_detected():
    rng = np.random.default_rng(0)
    a = (rng.random(300) < 0.5).astype(float)
    b = a.copy()
    flip = np.flatnonzero(a == 1)[:60]  # b loses 60 of a's hits
    b[flip] = 0
    assert paired_test(a, b) < 0.001
    low, high = diff_ci(a, b)
    assert low > 0


def test_identical_outcomes_are_not_significant():
    a = (np.random.default_rng(1).random(200) < 0.3).astype(float)
    assert paired_test(a, a.copy()) == 1.0
    assert diff_ci(a, a.copy()) == (0.0, 0.0)


def test_symmetric_disagreement_is_not_significant():
    a = (np.random.default_rng(2).random(200) < 0.3).astype(float)
    b = a.copy()
    b[np.flatnonzero(a == 1)[:5]] = 0  # five samples only a gets right ...
    b[np.flatnonzero(a == 0)[:5]] = 1  # ... and five only b gets right
    assert a.mean() == b.mean() and paired_test(a, b) > 0.5


def test_intervals_are_deterministic_and_cover_the_mean():
    x = (np.random.default_rng(3).random(150) < 0.4).astype(float)
    assert mean_ci(x) == mean_ci(x)
    low, high = mean_ci(x)
    assert low <= x.mean() <= high
    point, lo, hi = relative_improvement(x, x * 0 + 0.2)
    assert lo <= point <= hi
