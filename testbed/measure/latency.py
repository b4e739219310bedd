"""Latency added by a mesh: an architecture's request latency percentiles against the `none`
baseline's, measured in the same experiment, with a bootstrap interval over requests (the
two samples are independent runs, each resampled on its own; seeded, so a journal's
figures can be recomputed). A difference counts only when its interval excludes zero."""

from __future__ import annotations

import random

from .stats import percentile

PERCENTILES = (50, 90, 99)
RESAMPLES = 400
LEVEL = 0.95


def _quantiles(values: list[float]) -> dict[int, float]:
    s = sorted(values)
    return {q: percentile(s, q) for q in PERCENTILES}


def added(arch_ms: list[float], base_ms: list[float], seed: int = 1, resamples: int = RESAMPLES) -> dict:
    """Per percentile: {estimate, low, high, significant, method} of arch - base (ms); None
    values when either side has no latency."""
    if not arch_ms or not base_ms:
        return {f"p{q}": {"estimate": None, "low": None, "high": None, "significant": False} for q in PERCENTILES}
    rng = random.Random(seed)
    est_a, est_b = _quantiles(arch_ms), _quantiles(base_ms)
    diffs: dict[int, list[float]] = {q: [] for q in PERCENTILES}
    for _ in range(resamples):
        qa = _quantiles(rng.choices(arch_ms, k=len(arch_ms)))
        qb = _quantiles(rng.choices(base_ms, k=len(base_ms)))
        for q in PERCENTILES:
            diffs[q].append(qa[q] - qb[q])
    out = {}
    tail = (1 - LEVEL) / 2 * 100
    for q in PERCENTILES:
        d = sorted(diffs[q])
        low, high = percentile(d, tail), percentile(d, 100 - tail)
        out[f"p{q}"] = {"estimate": round(est_a[q] - est_b[q], 3), "low": round(low, 3), "high": round(high, 3),
                        "significant": low > 0 or high < 0,
                        "method": f"percentile bootstrap over requests, {resamples} resamples, {LEVEL:.0%}"}
    return out
