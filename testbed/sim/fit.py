"""The arithmetic of calibration: linear fits with their quality, and medians with their
spread. Small on purpose; numpy only (it comes with matplotlib).

`linear` fits y = X b by least squares, pulled gently toward a prior (ridge, `strength`
relative to the data's own scale): where the data inform a coefficient the prior hardly
matters, where they cannot tell two coefficients apart (clusters and routes grow together
in our templates) the prior decides, and `informed` (0 to 1, per coefficient) says which
was the case. Coefficients held non-negative are refitted at zero when they come out
negative. Quality: R², RMSE, n, and a standard error per coefficient."""

from __future__ import annotations

import math
import statistics

import numpy as np


def _solve(X, y, prior, lam, free):
    A = X.T @ X + np.diag(lam)
    b = X.T @ y + lam * prior
    beta = prior.copy()
    idx = np.flatnonzero(free)
    if idx.size:
        Ai = A[np.ix_(idx, idx)]
        bi = b[idx] - A[np.ix_(idx, np.flatnonzero(~free))] @ prior[~free]
        beta[idx] = np.linalg.solve(Ai, bi)
    return beta, A


def linear(rows: list[list[float]], y: list[float], names: list[str], prior: list[float] | None = None,
           strength: float = 1e-3, nonneg: tuple[str, ...] = ()) -> dict:
    """{name: {value, stderr, informed}} plus `quality` {r2, rmse, n}."""
    X = np.asarray(rows, dtype=float)
    Y = np.asarray(y, dtype=float)
    n, p = X.shape
    prior_v = np.asarray(prior if prior is not None else [0.0] * p, dtype=float)
    scale = np.trace(X.T @ X) / p if n else 1.0
    lam = np.full(p, strength * scale if prior is not None else 1e-9 * scale)
    free = np.ones(p, dtype=bool)
    beta, A = _solve(X, Y, prior_v, lam, free)
    for _ in range(p):  # active set: a coefficient held non-negative that came out negative is fixed at 0
        neg = [k for k, name in enumerate(names) if name in nonneg and beta[k] < 0 and free[k]]
        if not neg:
            break
        for k in neg:
            free[k], prior_v[k] = False, 0.0
        beta, A = _solve(X, Y, prior_v, lam, free)
    resid = Y - X @ beta
    ss_res = float(resid @ resid)
    ss_tot = float(((Y - Y.mean()) ** 2).sum()) if n else 0.0
    Ainv = np.linalg.inv(A)
    informed = np.clip(np.diag(Ainv @ (X.T @ X)), 0, 1)
    dof = max(n - float(informed.sum()), 1.0)
    sigma2 = ss_res / dof
    cov = sigma2 * Ainv @ (X.T @ X) @ Ainv
    out = {name: {"value": float(beta[k]), "stderr": float(math.sqrt(max(cov[k, k], 0.0))),
                  "informed": round(float(informed[k]) if free[k] else 0.0, 3)}
           for k, name in enumerate(names)}
    out["quality"] = {"r2": round(1 - ss_res / ss_tot, 4) if ss_tot > 0 else None,
                      "rmse": round(math.sqrt(ss_res / n), 3) if n else None, "n": n}
    return out


def spread(values: list[float]) -> dict:
    """The median of `values` with their range and count."""
    vals = sorted(v for v in values if v is not None and math.isfinite(v))
    if not vals:
        return {"value": None, "low": None, "high": None, "n": 0}
    return {"value": round(statistics.median(vals), 4), "low": round(vals[0], 4), "high": round(vals[-1], 4),
            "n": len(vals)}


def through_origin(x: list[float], y: list[float]) -> dict:
    """y = k x by least squares, with R² (about the mean) and the relative RMSE."""
    sxx = sum(a * a for a in x)
    if not sxx:
        return {"value": None, "r2": None, "rmse": None, "n": len(x)}
    k = sum(a * b for a, b in zip(x, y, strict=True)) / sxx
    res = [b - k * a for a, b in zip(x, y, strict=True)]
    mean = statistics.fmean(y)
    ss_tot = sum((b - mean) ** 2 for b in y)
    return {"value": k, "r2": round(1 - sum(r * r for r in res) / ss_tot, 4) if ss_tot > 0 else None,
            "rmse": round(math.sqrt(sum(r * r for r in res) / len(res)), 5), "n": len(x)}
