"""Blast radius, computed from per-request records (DESIGN.md, "Blast radius"). Pure.

A record: {"t": seconds since traffic start, "src": pod, "dst": service, "pod": answering pod
or None, "status": int or None, "latency_ms": float, "error": str or None}. A request failed
when its status is not 200. A record whose error is `generator-overload` is a request the
client itself never sent: it is no request at all for every metric here, and is counted apart
as `not_sent`. Long-lived connections are measured apart (`long_lived`).

Verdicts are exact and strict, so that the same change gets the same verdict whatever its
base values: error rates are compared as fractions of counts; latencies, `latency_factor` and
`error_points` as the decimals they are written as (0.7 is 7/10, not the nearest binary
float); "exceeds" means strictly more (a rise of exactly 5 points, or a p99 of exactly 3x the
baseline, is not enough). docs/experiments.md ("Metrics") states every definition."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from .stats import percentile

NOT_SENT = "generator-overload"  # the agent's error for a request its generator never sent
WINDOW = 3.0  # seconds: the stretch of a flow's requests detection and recovery judge at once
STEP = 1.0  # seconds between the starts of recovery windows: time_to_recover's resolution
MIN_REQUESTS = 20  # fewer requests in a window show nothing; 20 is what one stray failure in 5 % needs
NOISE_SIGMAS = 2  # requests_failed_band: about 95 % of what baseline noise alone would give


@dataclass
class Window:
    start: float
    end: float

    def holds(self, t: float) -> bool:
        return self.start <= t < self.end


def fault_window(at: float, duration: float, revert_at: float) -> Window:
    """From the injection to when the fault is over: its scheduled end or the end of its revert,
    whichever is later (a crash with no duration and a 5 s restart delay is down for 5 s).
    Pass actual times where they are known (when inject() was called, when revert() returned or
    the proxy was ready again)."""
    end = max(at + duration, revert_at)
    if end <= at:
        raise ValueError(f"a fault window needs a length: at={at}, duration={duration}, revert_at={revert_at}")
    return Window(at, end)


def cutoff(at: float, injections: Iterable[float], traffic_end: float) -> float:
    """Where a fault's measurements stop: the first injection strictly after `at` (a fault
    injected before this one is over would otherwise have its failures counted here), or the
    end of the traffic. Faults injected at the same moment do not cut each other."""
    return min([t for t in injections if t > at] + [traffic_end])


def definitions(error_points: float, latency_factor: float) -> dict:
    """The definitions in force, for the journal next to the thresholds."""
    return {"errorPoints": error_points, "latencyFactor": latency_factor, "exceeds": ">", "windowSeconds": WINDOW,
            "recoverStepSeconds": STEP, "minRequests": MIN_REQUESTS, "noiseSigmas": NOISE_SIGMAS,
            "notSent": NOT_SENT}


def _ok(r: dict) -> bool:
    return r.get("status") == 200


def _sent(r: dict) -> bool:
    return r.get("error") != NOT_SENT


def _dec(x: float | str) -> Fraction:
    """A number as the decimal it is written as (JSON, YAML): 0.7 is 7/10."""
    return Fraction(str(x))


def _exceeds(x: float, limit: Fraction) -> bool:
    """x > limit, exactly: floats decide when they are clearly apart, decimals at a near tie."""
    f = float(limit)
    if abs(x - f) > 1e-9 * max(abs(f), 1.0):
        return x > f
    return _dec(x) > limit


def _p99(latencies: list[float]) -> Fraction | None:
    """The 99th percentile as stats.percentile interpolates it, computed exactly."""
    if not latencies:
        return None
    s = sorted(latencies)
    pos = Fraction(99 * (len(s) - 1), 100)
    lo, hi = math.floor(pos), math.ceil(pos)
    return _dec(s[lo]) + (_dec(s[hi]) - _dec(s[lo])) * (pos - lo)


def _rate(summary: dict) -> Fraction:
    return Fraction(summary["failed"], summary["requests"]) if summary["requests"] else Fraction(0)


def by_flow(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    flows = defaultdict(list)
    for r in records:
        flows[(r["src"], r["dst"])].append(r)
    return flows


def flow_summary(records: list[dict], window: Window) -> dict:
    """Requests sent in the window, failures among them, the p99 of the successes (exact: its
    decimal, at most 5 places for latencies written to 3), and requests not sent."""
    inside = [r for r in records if window.holds(r["t"])]
    sent = [r for r in inside if _sent(r)]
    failed = sum(not _ok(r) for r in sent)
    p99 = _p99([r["latency_ms"] for r in sent if _ok(r)])
    return {"requests": len(sent), "failed": failed, "error_rate": failed / len(sent) if sent else None,
            "p99_ms": float(p99) if p99 is not None else None, "not_sent": len(inside) - len(sent)}


def affected(base: dict, window: dict, error_points: float, latency_factor: float) -> bool:
    """A flow is affected when its error rate in the window exceeds its baseline's by strictly
    more than `error_points` points, or its p99 is strictly more than `latency_factor` times its
    baseline p99, or it stopped altogether (requests in the baseline, none sent in the window
    answered nor failed; a window whose requests all went unsent is not judged)."""
    if window["requests"] == 0:
        return base["requests"] > 0 and not window.get("not_sent")
    if _rate(window) - _rate(base) > _dec(error_points) / 100:
        return True
    return base["p99_ms"] is not None and window["p99_ms"] is not None and \
        _dec(window["p99_ms"]) > _dec(latency_factor) * _dec(base["p99_ms"])


class _Series:
    """A flow's sent requests in time order, each bad or not, with running counts so that any
    window's requests and bad requests cost two bisections. Bad: failed, or slower than
    `slow_above` (latency_factor x the baseline p99): in a short window, slowness is judged
    request by request, so one stray slow request weighs like one stray failure."""

    def __init__(self, records: list[dict], slow_above: Fraction | None):
        sent = sorted((r for r in records if _sent(r)), key=lambda r: r["t"])
        self.t = [r["t"] for r in sent]
        self.kind = [None if _ok(r) and (slow_above is None or not _exceeds(r["latency_ms"], slow_above))
                     else "errors" if not _ok(r) else "latency" for r in sent]
        self.bad_before = [0]
        for k in self.kind:
            self.bad_before.append(self.bad_before[-1] + (k is not None))

    def count(self, start: float, end: float) -> tuple[int, int]:
        """(requests, bad requests) with start <= t < end."""
        i, j = bisect_left(self.t, start), bisect_left(self.t, end)
        return j - i, self.bad_before[j] - self.bad_before[i]

    def state(self, start: float, end: float, base_bad: Fraction, points: Fraction) -> str:
        """The window's verdict: "thin" (fewer than MIN_REQUESTS: shows nothing, and is not healthy),
        "broken" (its share of bad requests exceeds the baseline's by more than `points`) or "healthy"."""
        n, bad = self.count(start, end)
        if n < MIN_REQUESTS:
            return "thin"
        return "broken" if Fraction(bad, n) - base_bad > points else "healthy"

    def detect(self, window: Window, until: float, base_bad: Fraction, points: Fraction) -> tuple[float, str] | None:
        """The first bad request in the fault window that starts a broken WINDOW (cut at `until`):
        a stray failure amid healthy traffic does not, the first of a burst does. (time, basis)."""
        for i in range(bisect_left(self.t, window.start), bisect_left(self.t, window.end)):
            if self.kind[i] and self.state(self.t[i], min(self.t[i] + WINDOW, until), base_bad, points) == "broken":
                return self.t[i], self.kind[i]
        return None

    def recover(self, revert_at: float, until: float, base_bad: Fraction, points: Fraction) -> float | None:
        """Seconds from `revert_at` to the start of the first window from which every window is
        healthy. Windows last WINDOW seconds, start every STEP seconds from the revert, plus one
        ending at `until`, and must fit before `until`. None when the last one is not healthy (not
        recovered, or too few requests to tell) or none fits."""
        if until - WINDOW < revert_at:
            return None
        starts = [revert_at + k * STEP for k in range(int((until - WINDOW - revert_at) / STEP + 1e-9) + 1)]
        if until - WINDOW - starts[-1] > 1e-9:
            starts.append(until - WINDOW)
        unhealthy = [i for i, s in enumerate(starts) if self.state(s, s + WINDOW, base_bad, points) != "healthy"]
        if unhealthy and unhealthy[-1] == len(starts) - 1:
            return None
        return round(starts[unhealthy[-1] + 1] - revert_at if unhealthy else 0.0, 3)


def blast_radius(records: list[dict], flows: list[tuple[str, str]], baseline: Window, fault: Window,
                 revert_at: float, error_points: float = 5.0, latency_factor: float = 3.0, *,
                 end: float) -> dict:
    """The blast radius of one fault.

    flows: every (source pod, destination service) the traffic drove; baseline: the window before
    any fault; fault: from the injection to when the fault was over (`fault_window`); revert_at:
    when it was over (the revert done, the proxy restarted): recovery is measured from there;
    end: the cut-off (`cutoff`: the next injection strictly after this one, or the end of the
    traffic). Nothing at or after `end` is this fault's: the fault window is cut there too."""
    if end <= fault.start:
        raise ValueError(f"the cut-off ({end}) must come after the injection ({fault.start})")
    window = Window(fault.start, min(fault.end, end))
    points = _dec(error_points) / 100
    grouped = by_flow(records)
    result_flows, hit, detections, recoveries = {}, [], [], []
    excess, noise_var = Fraction(0), 0.0
    for flow in flows:
        recs = grouped.get(flow, [])
        b, w = flow_summary(recs, baseline), flow_summary(recs, window)
        is_hit = affected(b, w, error_points, latency_factor)
        p_b = _rate(b)
        excess += w["failed"] - p_b * w["requests"]  # summed over flows before any clipping
        if b["requests"]:
            noise_var += float(p_b * (1 - p_b)) * (w["requests"] + w["requests"] ** 2 / b["requests"])
        entry = {"baseline": b, "fault": w, "affected": is_hit}
        if is_hit:
            hit.append(flow)
            series = _Series(recs, _dec(latency_factor) * _dec(b["p99_ms"]) if b["p99_ms"] is not None else None)
            n_b, bad_b = series.count(baseline.start, baseline.end)
            base_bad = Fraction(bad_b, n_b) if n_b else Fraction(0)
            found = series.detect(window, end, base_bad, points)
            recovered = series.recover(revert_at, end, base_bad, points)
            entry["time_to_detect"] = round(found[0] - window.start, 3) if found else None
            entry["time_to_recover"] = recovered
            if found:
                detections.append((found[0], found[1]))
            recoveries.append(recovered)
        result_flows[f"{flow[0]}->{flow[1]}"] = entry
    first = min(detections, default=None)
    sigma = math.sqrt(noise_var)
    not_sent = _not_sent(records, [baseline, window, Window(revert_at, end)])
    return {
        "flows_total": len(flows),
        "flows_affected": len(hit),
        "pods_affected": sorted({src for src, _ in hit}),
        "services_affected": sorted({dst for _, dst in hit}),
        "requests_failed": round(max(excess, Fraction(0))),
        "requests_failed_band": [round(max(float(excess) - NOISE_SIGMAS * sigma, 0.0), 1),
                                 round(max(float(excess) + NOISE_SIGMAS * sigma, 0.0), 1)],
        "time_to_detect": round(first[0] - window.start, 3) if first else None,
        "detect_basis": first[1] if first else None,
        "time_to_recover": max(recoveries) if hit and None not in recoveries else None,
        "fault_window": [window.start, window.end],
        "until": end,
        "not_sent": not_sent,
        "generator_overloaded": not_sent > 0,
        "flows": result_flows,
    }


def _not_sent(records: list[dict], windows: list[Window]) -> int:
    """Requests the generator never sent, in any of the windows (each counted once)."""
    return sum(1 for r in records if not _sent(r) and any(w.holds(r["t"]) for w in windows))


LONG_LIVED_BREAKS = ("drained", "refused", "closed", "reset", "timeout")


def _break_kind(e: dict) -> str:
    """A drain is only a 200 answer followed by Connection: close. A `drained` event with
    another status (recorded before the agent told them apart) lost its request: `refused`."""
    if e["event"] == "drained" and e.get("status", 200) != 200:
        return "refused"
    return e["event"]


def long_lived(events: list[dict], flows: list[tuple[str, str]], baseline: Window, window: Window) -> dict:
    """What each flow's long-lived connection went through (agent `streams` records): how
    many ended inside the window, and how: drained (a 200 answer, then closed by the server:
    the graceful way), or cut (refused: a non-200 answer that closed the connection; closed:
    a FIN where an answer was due; reset; timeout: a request was lost each time)."""
    breaks = [e for e in events if e["event"] != "end"]
    inside = [_break_kind(e) for e in breaks if window.holds(e["t"])]
    kinds = {kind: inside.count(kind) for kind in LONG_LIVED_BREAKS}
    return {"connections": len(flows), "broken": len(inside), "cut": len(inside) - kinds["drained"], **kinds,
            "flows_broken": sorted({f"{e['src']}->{e['dst']}" for e in breaks if window.holds(e["t"])}),
            "broken_in_baseline": sum(baseline.holds(e["t"]) for e in breaks)}


def timeline(records: list[dict]) -> list[dict]:
    """Per second and flow: requests sent, failures, p50 and p99 latency of the successes.
    Requests the generator never sent are left out (they are no request)."""
    buckets = defaultdict(list)
    for r in records:
        if _sent(r):
            buckets[(int(r["t"]), r["src"], r["dst"])].append(r)
    rows = []
    for (sec, src, dst), recs in sorted(buckets.items()):
        lat = [r["latency_ms"] for r in recs if _ok(r)]
        rows.append({"second": sec, "src": src, "dst": dst, "requests": len(recs),
                     "failed": sum(not _ok(r) for r in recs),
                     "p50_ms": round(percentile(lat, 50), 3) if lat else "",
                     "p99_ms": round(percentile(lat, 99), 3) if lat else ""})
    return rows
