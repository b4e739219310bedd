"""Summary statistics for benchmarks: percentiles, and medians and paired ratios with
distribution-free confidence intervals. Pure and deterministic: no resampling, no seed, so a
journal's numbers can be recomputed exactly.

The intervals are exact order-statistic (binomial) intervals. For n independent values, the
interval [x_(l), x_(n+1-l)] between the l-th smallest and the l-th largest covers the true
median with probability 1 - 2 P(B <= l - 1), B ~ Binomial(n, 1/2), whatever the distribution
(ties can only raise it). We take the narrowest such interval whose coverage reaches the level
asked for, and report the coverage it achieves. With too few values none reaches it (n = 3:
[min, max] covers the median 75 % of the time); then the interval is [min, max], reported with
the coverage it really has and `reaches_level` false, never passed off as 95 %. A bootstrap
cannot do better with so few values: it only hides the shortfall.

Missing values (None, NaN, infinities: a repetition that measured nothing) are dropped and
counted, so the answer does not depend on their position and no NaN reaches a journal."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval. `level` is the coverage asked for,
    `achieved` the coverage the chosen order statistics guarantee; `n` values were used and
    `dropped` left out as missing. estimate/low/high are None when no value was left."""

    estimate: float | None
    low: float | None
    high: float | None
    level: float
    achieved: float
    n: int
    dropped: int
    method: str

    @property
    def reaches_level(self) -> bool:
        return self.n > 0 and self.achieved >= self.level

    def label(self) -> str:
        """How to caption the interval: its real coverage, and the shortfall if any."""
        if self.n == 0:
            return "no values"
        text = f"{self.achieved:.1%}".replace(".0%", "%")
        return text if self.reaches_level else f"{text} only ({self.level:.0%} asked, n={self.n})"

    def as_dict(self, key: str = "estimate") -> dict:
        """JSON-safe (None, never NaN); `key` names the estimate ("median", "ratio")."""
        return {key: self.estimate, "low": self.low, "high": self.high, "level": self.level,
                "achieved": round(self.achieved, 4), "reaches_level": self.reaches_level, "n": self.n,
                "dropped": self.dropped, "method": self.method}


def _finite(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@lru_cache(maxsize=256)
def _order_statistics(n: int, level: Fraction) -> tuple[int, Fraction]:
    """(l, coverage) for n values: the largest l whose [x_(l), x_(n+1-l)] reaches `level`, or
    l = 1 ([min, max]) with its coverage when none does. Coverage shrinks as l grows."""
    def coverage(lo: int) -> Fraction:
        return 1 - 2 * Fraction(sum(math.comb(n, i) for i in range(lo)), 2 ** n)

    best = 1
    for lo in range(2, (n + 1) // 2 + 1):
        if coverage(lo) < level:
            break
        best = lo
    return best, coverage(best)


def median_ci(values: Sequence[float | None], level: float = 0.95) -> Interval:
    """The median and its exact order-statistic interval (see the module docstring).

    Migration: this returned a (median, low, high) tuple from a bootstrap; it now returns an
    `Interval` (`.estimate`, `.low`, `.high`, `.achieved`, `.reaches_level`, `.as_dict("median")`),
    and takes no `resamples` or `seed`."""
    kept = sorted(v for v in values if _finite(v))
    dropped = len(values) - len(kept)
    method = "order-statistic"
    if not kept:
        return Interval(None, None, None, level, 0.0, 0, dropped, method)
    n = len(kept)
    lo, cov = _order_statistics(n, Fraction(str(level)))
    return Interval(float(statistics.median(kept)), float(kept[lo - 1]), float(kept[n - lo]), level, float(cov), n,
                    dropped, method)


def paired_ratio_ci(num: Sequence[float | None], den: Sequence[float | None], level: float = 0.95) -> Interval:
    """num[k] / den[k] for each repetition k, and the median of these ratios with its exact
    interval. For variants measured interleaved, repetition k of each shares the machine's
    state (its drift, its noisy neighbours): the ratio within a repetition cancels it, where
    resampling each variant on its own would count it twice and widen the interval manyfold.
    The estimate is the median of the per-repetition ratios, not the ratio of the medians.

    A repetition missing either value (None, NaN) or with a zero denominator is dropped as a
    pair and counted in `dropped`. Sequences of different lengths are not pairs: ValueError."""
    if len(num) != len(den):
        raise ValueError(f"paired_ratio_ci needs one value of each per repetition: {len(num)} against {len(den)}")
    ratios = [a / b for a, b in zip(num, den, strict=True) if _finite(a) and _finite(b) and b != 0]
    iv = median_ci(ratios, level)
    return replace(iv, dropped=len(num) - len(ratios), method="paired order-statistic (median of ratios)")


def min_repeats(level: float = 0.95) -> int:
    """The fewest values whose median interval can reach `level` (6 for 95 %: [min, max] of
    6 covers 96.9 %; of 5, 93.8 %)."""
    n = 1
    while _order_statistics(n, Fraction(str(level)))[1] < Fraction(str(level)):
        n += 1
    return n
