"""Benchmark statistics against values worked out by hand."""

from __future__ import annotations

import math

from testbed.measure.stats import median_ci, percentile, ratio_ci


def test_percentile_interpolates_between_ranks():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20, 30, 40, 50], 90) == 46.0
    assert percentile([7], 99) == 7
    assert math.isnan(percentile([], 50))


def test_median_ci_brackets_the_median_and_is_reproducible():
    values = [10.0, 11.0, 9.5, 10.2, 10.8, 9.9, 10.1]
    med, lo, hi = median_ci(values)
    assert med == 10.1 and lo <= med <= hi and lo >= 9.5 and hi <= 11.0
    assert median_ci(values) == (med, lo, hi)


def test_ratio_ci_of_identical_samples_contains_one():
    ratio, lo, hi = ratio_ci([5.0, 5.1, 4.9, 5.0], [5.0, 5.1, 4.9, 5.0])
    assert ratio == 1.0 and lo <= 1.0 <= hi


def test_ratio_ci_of_clearly_different_samples_excludes_one():
    ratio, lo, hi = ratio_ci([8.0, 8.1, 7.9, 8.0, 8.2], [10.0, 10.1, 9.9, 10.0, 10.2])
    assert abs(ratio - 0.8) < 1e-9 and hi < 1.0
