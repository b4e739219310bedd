"""The blast radius of a simulated fault, with the definitions of measure/blast.py, computed
from per-flow traces instead of per-request records.

A flow no outage reaches is normal: every request succeeds at the flow's normal latency, so
its baseline and fault windows are alike and it is never affected. Only the flows an outage
reaches get a `Trace`: the requests that differ from normal, each with its outcome. Any
window's request count comes from the schedule (flows.Grid), its failures and slow requests
from the trace, and its p99 from both; detection and recovery windows are judged by
blast.py's own `_Series` logic over these counts. The unit tests hold this equal to
`measure.outcome.fault_entry` on the full records the same model would give."""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from fractions import Fraction

from ..measure import blast
from ..measure.blast import Window
from ..measure.outcome import windows
from .flows import Exposure, Grid, Outcome, outcome, requests
from .params import TIMEOUT

STREAM_INTERVAL = 0.2  # seconds between requests on a long-lived connection (traffic/driver.py)


@dataclass
class Trace:
    """The requests of one flow that differ from normal, in time order."""

    normal_ms: float
    t: list[float] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)


def trace(exposed: list[Exposure], grid: Grid, phase: int, replicas: int, normal_ms: float) -> Trace:
    """Every request of the flow the exposures reach, each exposure evaluated in schedule
    order; where several reach one request, the worst outcome (failed, then slowest)."""
    worst: dict[int, Outcome] = {}
    for ex in exposed:
        counters = [0, 0]
        for k in requests(ex, grid, phase, replicas):
            got = outcome(ex, counters, grid.t(k), normal_ms)
            if got is not None and got.worse(worst.get(k)):
                worst[k] = got
    out = Trace(normal_ms)
    for k in sorted(worst):
        out.t.append(grid.t(k))
        out.failed.append(worst[k].failed)
        out.latency.append(round(worst[k].latency_ms, 3))
    return out


class _Sparse(blast._Series):
    """blast.py's series of one flow, holding only its bad requests; how many requests a
    window holds comes from the schedule."""

    def __init__(self, tr: Trace, grid: Grid, slow_above: Fraction):
        self.grid = grid
        bad = [(t, "errors" if f else "latency") for t, f, lat in zip(tr.t, tr.failed, tr.latency, strict=True)
               if f or blast._exceeds(lat, slow_above)]
        self.t = [t for t, _ in bad]
        self.kind = [k for _, k in bad]
        self.bad_before = list(range(len(bad) + 1))

    def count(self, start: float, end: float) -> tuple[int, int]:
        i, j = bisect_left(self.t, start), bisect_left(self.t, end)
        return self.grid.between(start, end), j - i


def p99(normal_ms: float, normal: int, others: list[float]) -> Fraction | None:
    """blast._p99 of `normal` requests at `normal_ms` and the `others`, without listing the
    normal ones: the same interpolation between the same two ranks, computed exactly."""
    n = normal + len(others)
    if not n:
        return None
    below = sorted(v for v in others if v < normal_ms)
    above = sorted(v for v in others if v >= normal_ms)

    def at(rank: int) -> float:
        if rank < len(below):
            return below[rank]
        if rank < len(below) + normal:
            return normal_ms
        return above[rank - len(below) - normal]

    pos = Fraction(99 * (n - 1), 100)
    lo, hi = math.floor(pos), math.ceil(pos)
    return blast._dec(at(lo)) + (blast._dec(at(hi)) - blast._dec(at(lo))) * (pos - lo)


def _summary(tr: Trace | None, normal_ms: float, grid: Grid, window: Window) -> dict:
    n = grid.between(window.start, window.end)
    failed, ok, touched = 0, [], 0
    if tr is not None:
        i, j = bisect_left(tr.t, window.start), bisect_left(tr.t, window.end)
        failed = sum(tr.failed[i:j])
        ok = [lat for f, lat in zip(tr.failed[i:j], tr.latency[i:j], strict=True) if not f]
        touched = j - i
    q = p99(normal_ms, n - touched, ok)
    return {"requests": n, "failed": failed, "error_rate": failed / n if n else None,
            "p99_ms": float(q) if q is not None else None, "not_sent": 0}


def blast_radius(traces: dict[int, Trace], flows: list[tuple[str, str]], normal_ms: list[float], grid: Grid,
                 baseline: Window, fault: Window, revert_at: float, error_points: float, latency_factor: float,
                 end: float, list_all: bool) -> dict:
    """measure.blast.blast_radius, for the model: `traces` holds the flows anything reached
    (by index); the others are normal. `list_all`: list every flow in `flows` (small
    clusters), else only the flows something reached between the injection and the cut-off."""
    window = Window(fault.start, min(fault.end, end))
    points = blast._dec(error_points) / 100
    empty = grid.between(window.start, window.end) == 0  # a window with no request: every flow "stopped"
    if list_all or empty:
        judged = range(len(flows))
    else:  # a flow whose trace holds nothing from the injection to the cut-off is normal there
        judged = sorted(i for i, tr in traces.items() if bisect_left(tr.t, window.start) < bisect_left(tr.t, end))
    result_flows, hit, detections, recoveries, excess = {}, [], [], [], 0
    baselines: dict[float, dict] = {}  # every normal flow's baseline is alike: one per latency
    for i in judged:
        tr, normal = traces.get(i), normal_ms[i]
        b = baselines.get(normal) or baselines.setdefault(normal, _summary(None, normal, grid, baseline))
        w = _summary(tr, normal, grid, window)
        is_hit = blast.affected(b, w, error_points, latency_factor)
        excess += w["failed"]  # the model's baseline has no failures
        entry = {"baseline": b, "fault": w, "affected": is_hit}
        if is_hit:
            hit.append(flows[i])
            series = _Sparse(tr or Trace(normal), grid, blast._dec(latency_factor) * blast._dec(b["p99_ms"]))
            found = series.detect(window, end, Fraction(0), points)
            recovered = series.recover(revert_at, end, Fraction(0), points)
            entry["time_to_detect"] = round(found[0] - window.start, 3) if found else None
            entry["time_to_recover"] = recovered
            if found:
                detections.append(found)
            recoveries.append(recovered)
        if list_all or not empty:
            result_flows[f"{flows[i][0]}->{flows[i][1]}"] = entry
    first = min(detections, default=None)
    return {
        "flows_total": len(flows), "flows_affected": len(hit),
        "pods_affected": sorted({src for src, _ in hit}), "services_affected": sorted({dst for _, dst in hit}),
        "requests_failed": excess, "requests_failed_band": [float(excess), float(excess)],
        "time_to_detect": round(first[0] - window.start, 3) if first else None,
        "detect_basis": first[1] if first else None,
        "time_to_recover": max(recoveries) if hit and None not in recoveries else None,
        "fault_window": [window.start, window.end], "until": end, "not_sent": 0, "generator_overloaded": False,
        "flows": result_flows,
    }


def _break(ex: Exposure, stream_replica: int) -> tuple[str | None, int]:
    """How a flow's long-lived connection ends when an outage reaches it, and how many times
    (None: it does not). Seen on real runs (docs/simulation.md): a proxy the app's own
    connection ends at closes it (crash, restart), times it out (a hang longer than the
    client's timeout), resets it (a stalled extension, when killed) or drains it (a hot
    restart); a waypoint out of service closes the L4 proxy's tunnel, and with it the app's
    connection, at every request the app tries until it is back; a far proxy that
    makes requests wait longer than the client does times them out."""
    if ex.hits is not None and stream_replica not in ex.hits:
        return None, 0
    o, e = ex.outage, ex.effect
    if ex.position == "source":
        kind = {"crash": "closed", "restart": "closed", "drain": "drained", "wasm-loop": "reset",
                "hang": "timeout" if o.end - o.start >= TIMEOUT else None}.get(o.cause)
        return kind, 1
    if ex.position == "l7" and o.cause == "drain":
        return "drained", 1
    if ex.position == "l7" and o.cause in ("crash", "restart", "wasm-loop"):
        return "closed", max(1, math.ceil((o.end - max(o.start + e.onset, o.start)) / STREAM_INTERVAL - 1e-9))
    if o.cause != "drain" and e.fail < 0.5 and (o.end - o.start - e.onset) + e.resume > TIMEOUT:
        return "timeout", 1
    return None, 0


def long_lived(exposures: dict[int, list[Exposure]], flows: list[tuple[str, str]], phases: list[int],
               replicas: list[int], window: Window) -> dict:
    """measure.blast.long_lived, for the model: each flow's one long-lived connection goes to
    replica `phase` of its service and breaks at most once per outage starting in the window."""
    kinds = dict.fromkeys(blast.LONG_LIVED_BREAKS, 0)
    broken = set()
    for i, exposed in exposures.items():
        for ex in exposed:
            if window.holds(ex.outage.start):
                kind, times = _break(ex, phases[i] % replicas[i])
                if kind:
                    kinds[kind] += times
                    broken.add(f"{flows[i][0]}->{flows[i][1]}")
    total = sum(kinds.values())
    return {"connections": len(flows), "broken": total, "cut": total - kinds["drained"], **kinds,
            "flows_broken": sorted(broken), "broken_in_baseline": 0}


def fault_entry(spec, facts: dict, details: dict, times: dict, traces: dict[int, Trace],
                exposures: dict[int, list[Exposure]], index, normal_ms: list[float], grid: Grid, baseline: Window,
                injections: list[float], traffic_end: float, error_points: float, latency_factor: float,
                list_all: bool) -> dict:
    """measure.outcome.fault_entry, for the model (same windows, same cut-off)."""
    entry = {"kind": spec.kind, "target": spec.target.__dict__, "at": spec.at, "duration": spec.duration, **times,
             **facts}
    entry["identities_exposed"] = details.pop("identities_exposed", [])
    entry["reachable_pairs"] = details.pop("reachable_pairs", [])
    entry["details"] = details
    w = windows(spec, times, injections, traffic_end)
    entry["measured"] = w is not None
    if w is None:
        return entry
    window, over, until, settled = w
    entry.update(blast_radius(traces, index.flows, normal_ms, grid, baseline, window, over, error_points,
                              latency_factor, until, list_all))
    entry["long_lived"] = long_lived(exposures, index.flows, index.phase, index.replicas, settled)
    return entry
