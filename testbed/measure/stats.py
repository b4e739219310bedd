"""Summary statistics for benchmarks: percentiles, medians with bootstrap confidence
intervals, and ratios of medians with their own intervals. Pure; seeded, so a journal's
numbers can be recomputed exactly."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median_ci(values: Sequence[float], level: float = 0.95, resamples: int = 2000,
              seed: int = 1) -> tuple[float, float, float]:
    """(median, low, high): the median and a percentile-bootstrap confidence interval."""
    if not values:
        return (math.nan, math.nan, math.nan)
    rng = random.Random(seed)
    boots = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    a = (1 - level) / 2
    return (statistics.median(values), percentile(boots, 100 * a), percentile(boots, 100 * (1 - a)))


def ratio_ci(num: Sequence[float], den: Sequence[float], level: float = 0.95, resamples: int = 2000,
             seed: int = 1) -> tuple[float, float, float]:
    """(ratio, low, high) of median(num) / median(den), each side resampled independently."""
    if not num or not den or statistics.median(den) == 0:
        return (math.nan, math.nan, math.nan)
    rng = random.Random(seed)
    boots = []
    for _ in range(resamples):
        d = statistics.median(rng.choices(den, k=len(den)))
        if d:
            boots.append(statistics.median(rng.choices(num, k=len(num))) / d)
    boots.sort()
    a = (1 - level) / 2
    return (statistics.median(num) / statistics.median(den), percentile(boots, 100 * a),
            percentile(boots, 100 * (1 - a)))
