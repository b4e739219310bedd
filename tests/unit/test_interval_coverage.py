"""The intervals cover what they say they cover: simulated data with a known median or ratio,
many seeded trials, observed coverage against the coverage each interval claims.

Tolerance: the observed coverage of T trials is binomial around the true one; we accept
4 standard errors, sqrt(a (1 - a) / T), a false alarm about once in 16,000 runs (and the
seeds are fixed, so a run is repeatable)."""

from __future__ import annotations

import math
import random

import pytest

from testbed.measure.stats import median_ci, paired_ratio_ci

TRIALS = 2000


def tolerance(claimed: float, trials: int = TRIALS) -> float:
    return 4 * math.sqrt(claimed * (1 - claimed) / trials)


@pytest.mark.parametrize("n", [3, 5, 6, 10, 25])
def test_median_interval_covers_the_true_median_as_often_as_it_claims(n):
    rng = random.Random(n)
    covered, claimed = 0, None
    for _ in range(TRIALS):
        values = [math.exp(rng.gauss(0.0, 1.0)) for _ in range(n)]  # log-normal: median exactly 1
        iv = median_ci(values)
        claimed = iv.achieved
        covered += iv.low <= 1.0 <= iv.high
    observed = covered / TRIALS
    assert abs(observed - claimed) <= tolerance(claimed)
    # and the claim is honest against the level asked: below 6 values it says it falls short
    assert (claimed >= 0.95) == (n >= 6)


def test_paired_ratio_interval_covers_the_true_ratio_and_sees_it_under_shared_drift():
    # 10 interleaved repetitions; the machine drifts by up to x2 between repetitions (shared by
    # both variants), each measurement has 5 % noise of its own; the true ratio is 0.8.
    rng = random.Random(7)
    trials, covered, excludes_one, claimed = 1000, 0, 0, None
    for _ in range(trials):
        drift = [math.exp(rng.gauss(0.0, 0.35)) for _ in range(10)]
        num = [0.8 * d * math.exp(rng.gauss(0.0, 0.05)) for d in drift]
        den = [d * math.exp(rng.gauss(0.0, 0.05)) for d in drift]
        iv = paired_ratio_ci(num, den)
        claimed = iv.achieved
        covered += iv.low <= 0.8 <= iv.high
        excludes_one += iv.high < 1.0
    assert abs(covered / trials - claimed) <= tolerance(claimed, trials)
    assert excludes_one == trials  # the 20 % difference is seen in every run
