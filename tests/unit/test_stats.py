"""Benchmark statistics against values worked out by hand."""

from __future__ import annotations

import json
import math

import pytest

from testbed.atomic import finite as json_safe
from testbed.measure.stats import median_ci, min_repeats, paired_ratio_ci, percentile

NAN = float("nan")


def test_percentile_interpolates_between_ranks():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20, 30, 40, 50], 90) == 46.0
    assert percentile([7], 99) == 7
    assert math.isnan(percentile([], 50))


def test_three_repeats_give_min_max_labelled_as_the_75_percent_they_cover():
    # [min, max] of 3 misses the median when all 3 fall on one side: 2 * (1/2)^3 = 25 %
    iv = median_ci([10.0, 11.0, 9.5])
    assert (iv.estimate, iv.low, iv.high, iv.achieved, iv.n) == (10.0, 9.5, 11.0, 0.75, 3)
    assert not iv.reaches_level and iv.label() == "75% only (95% asked, n=3)"


def test_six_repeats_reach_95_percent():
    # [min, max] of 6: 1 - 2 / 64 = 96.875 %; [2nd, 5th]: 1 - 2 * 7 / 64 = 78.1 %, too little
    iv = median_ci([6.0, 1.0, 5.0, 2.0, 4.0, 3.0])
    assert (iv.estimate, iv.low, iv.high, iv.achieved) == (3.5, 1.0, 6.0, 0.96875) and iv.reaches_level
    assert min_repeats(0.95) == 6 and min_repeats(0.90) == 5


def test_ten_values_use_the_second_smallest_and_second_largest():
    # l = 2: 1 - 2 * (1 + 10) / 1024 = 97.85 %; l = 3: 1 - 2 * 56 / 1024 = 89.1 % < 95 %
    iv = median_ci([float(v) for v in range(10, 0, -1)])
    assert (iv.low, iv.high, iv.achieved, iv.estimate) == (2.0, 9.0, 1 - 22 / 1024, 5.5)
    assert median_ci([float(v) for v in range(1, 11)]) == iv


def test_missing_repetitions_are_dropped_whatever_their_place_and_never_written_as_nan():
    a, b = median_ci([3.0, NAN, 1.0, None, 2.0]), median_ci([NAN, 2.0, None, 3.0, 1.0])
    assert a == b and (a.estimate, a.n, a.dropped) == (2.0, 3, 2)
    empty = median_ci([NAN, None])
    assert (empty.estimate, empty.low, empty.high, empty.n, empty.dropped) == (None, None, None, 0, 2)
    assert empty.label() == "no values"
    json.dumps(empty.as_dict("median"), allow_nan=False)
    safe = json_safe({"p50": NAN, "reps": [1.0, math.inf, (2.0, NAN)]})
    assert safe == {"p50": None, "reps": [1.0, None, [2.0, None]]}


def test_paired_ratio_cancels_the_drift_the_variants_share():
    # repetition k of both variants ran under the same drift (x1 to x6): the per-repetition
    # ratios are 0.80, 0.78, 0.82, 0.79, 0.81, 0.80; median 0.80, interval [min, max] of 6.
    drift = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    ratios = [0.80, 0.78, 0.82, 0.79, 0.81, 0.80]
    num, den = [d * r for d, r in zip(drift, ratios, strict=True)], drift
    iv = paired_ratio_ci(num, den)
    assert iv.estimate == pytest.approx(0.80) and iv.low == pytest.approx(0.78) and iv.high == pytest.approx(0.82)
    assert iv.high < 1.0 and iv.reaches_level and iv.as_dict("ratio")["ratio"] == iv.estimate
    # Each variant on its own spans the whole drift: its median interval is [min, max] of 6,
    # [0.8, 4.86] and [1, 6], which overlap: resampled independently, no difference is seen.
    assert median_ci(num).high > median_ci(den).low


def test_paired_ratio_drops_incomplete_pairs_and_refuses_unpaired_input():
    iv = paired_ratio_ci([1.0, None, 3.0, 4.0, NAN, 6.0], [2.0, 2.0, NAN, 8.0, 1.0, 0.0])
    assert (iv.n, iv.dropped, iv.estimate) == (2, 4, 0.5)  # only (1, 2) and (4, 8) are whole pairs
    with pytest.raises(ValueError):
        paired_ratio_ci([1.0, 2.0], [1.0])
