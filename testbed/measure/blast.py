"""Blast radius, computed from per-request records (DESIGN.md, "Blast radius"). Pure.

A record: {"t": seconds since traffic start, "src": pod, "dst": service, "pod": answering pod
or None, "status": int or None, "latency_ms": float, "error": str or None}. A request failed
when its status is not 200. Long-lived connections are measured apart (`long_lived`)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from .stats import percentile


@dataclass
class Window:
    start: float
    end: float

    def holds(self, t: float) -> bool:
        return self.start <= t < self.end


def _ok(r: dict) -> bool:
    return r.get("status") == 200


def by_flow(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    flows = defaultdict(list)
    for r in records:
        flows[(r["src"], r["dst"])].append(r)
    return flows


def flow_summary(records: list[dict], window: Window) -> dict:
    inside = [r for r in records if window.holds(r["t"])]
    failed = [r for r in inside if not _ok(r)]
    lat = [r["latency_ms"] for r in inside if _ok(r)]
    return {"requests": len(inside), "failed": len(failed),
            "error_rate": len(failed) / len(inside) if inside else 0.0,
            "p99_ms": percentile(lat, 99) if lat else math.nan}


def affected(base: dict, window: dict, error_points: float, latency_factor: float) -> bool:
    if window["requests"] == 0:
        return base["requests"] > 0  # the flow stopped altogether
    if (window["error_rate"] - base["error_rate"]) * 100 > error_points:
        return True
    return not math.isnan(base["p99_ms"]) and not math.isnan(window["p99_ms"]) and \
        window["p99_ms"] > latency_factor * base["p99_ms"]


def blast_radius(records: list[dict], flows: list[tuple[str, str]], baseline: Window, fault: Window,
                 revert_at: float, error_points: float = 5.0, latency_factor: float = 3.0,
                 end: float | None = None) -> dict:
    """flows: every (source pod, destination service) the traffic drove."""
    grouped = by_flow(records)
    result_flows, hit = {}, []
    requests_failed = 0.0
    first_error = math.inf
    for flow in flows:
        recs = grouped.get(flow, [])
        b, w = flow_summary(recs, baseline), flow_summary(recs, fault)
        is_hit = affected(b, w, error_points, latency_factor)
        requests_failed += max(w["failed"] - b["error_rate"] * w["requests"], 0.0)
        errs = [r["t"] for r in recs if fault.holds(r["t"]) and not _ok(r)]
        if errs:
            first_error = min(first_error, min(errs))
        result_flows[f"{flow[0]}->{flow[1]}"] = {"baseline": b, "fault": w, "affected": is_hit}
        if is_hit:
            hit.append(flow)
    recover = _time_to_recover(grouped, hit, baseline, revert_at, error_points, end)
    return {
        "flows_total": len(flows),
        "flows_affected": len(hit),
        "pods_affected": sorted({src for src, _ in hit}),
        "services_affected": sorted({dst for _, dst in hit}),
        "requests_failed": round(requests_failed),
        "time_to_detect": round(first_error - fault.start, 3) if first_error < math.inf else None,
        "time_to_recover": recover,
        "flows": result_flows,
    }


def _time_to_recover(grouped, hit, baseline: Window, revert_at: float, error_points: float,
                     end: float | None) -> float | None:
    """From the revert to the first whole second after which every affected flow's success
    rate stays within `error_points` of its baseline, looking no further than `end` (the
    end of the traffic, or the next fault, whose failures are not this one's); None when no
    flow was affected, or when it had not recovered by `end`."""
    if not hit:
        return None
    worst = 0.0
    for flow in hit:
        recs = grouped.get(flow, [])
        base_ok = 1 - flow_summary(recs, baseline)["error_rate"]
        last = end if end is not None else max((r["t"] for r in recs), default=revert_at)
        seconds = defaultdict(list)
        for r in recs:
            if r["t"] >= revert_at and (end is None or r["t"] < end):
                seconds[int(r["t"] - revert_at)].append(_ok(r))
        bad = [s for s, oks in seconds.items() if (sum(oks) / len(oks)) < base_ok - error_points / 100]
        recovered_at = (max(bad) + 1) if bad else 0
        if revert_at + recovered_at >= last:
            return None
        worst = max(worst, recovered_at)
    return float(worst)


def long_lived(events: list[dict], flows: list[tuple[str, str]], baseline: Window, window: Window) -> dict:
    """What each flow's long-lived connection went through (agent `streams` records): how
    many ended inside the window, and how: drained (answered, then closed by the server: the
    graceful way), or cut (closed without an answer, reset, timed out: a request was lost)."""
    breaks = [e for e in events if e["event"] != "end"]
    inside = [e for e in breaks if window.holds(e["t"])]
    kinds = {kind: sum(e["event"] == kind for e in inside) for kind in ("drained", "closed", "reset", "timeout")}
    return {"connections": len(flows), "broken": len(inside), "cut": len(inside) - kinds["drained"], **kinds,
            "flows_broken": sorted({f"{e['src']}->{e['dst']}" for e in inside}),
            "broken_in_baseline": sum(baseline.holds(e["t"]) for e in breaks)}


def timeline(records: list[dict]) -> list[dict]:
    """Per second and flow: requests, failures, p50 and p99 latency of the successes."""
    buckets = defaultdict(list)
    for r in records:
        buckets[(int(r["t"]), r["src"], r["dst"])].append(r)
    rows = []
    for (sec, src, dst), recs in sorted(buckets.items()):
        lat = [r["latency_ms"] for r in recs if _ok(r)]
        rows.append({"second": sec, "src": src, "dst": dst, "requests": len(recs),
                     "failed": sum(not _ok(r) for r in recs),
                     "p50_ms": round(percentile(lat, 50), 3) if lat else "",
                     "p99_ms": round(percentile(lat, 99), 3) if lat else ""})
    return rows
