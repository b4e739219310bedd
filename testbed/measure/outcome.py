"""What one architecture's run of an experiment measured, assembled from the records alone:
each fault's blast radius (blast.py) over the times it actually happened, its long-lived
connections, the clean window after the last revert. Pure: the same records give the same
journal entry, so a journal's figures can be recomputed from its record files."""

from __future__ import annotations

from . import neighbours
from .blast import Window, blast_radius, cutoff, fault_window, long_lived
from .stats import percentile

SETTLE = 0.4  # seconds after a revert returned in which long-lived connections still close


def windows(spec, times: dict, injections: list[float], traffic_end: float) \
        -> tuple[Window, float, float, Window] | None:
    """The windows a fault injected at `times["injected_at"]` is judged over: its own window,
    when its effects ended (`over`), the cut-off (`until`: the next injection, or the end of
    the traffic) and the window its long-lived connections settle in. None when the cut-off
    comes before the fault's window opens: nothing of it can be measured."""
    at = times["injected_at"]
    over = times.get("ended_at") or times.get("reverted_at") or (spec.at + spec.duration)
    until = cutoff(spec.at, injections, traffic_end)
    window = fault_window(at, spec.duration, over) if max(at + spec.duration, over) > at else Window(at, at + 0.001)
    if until <= window.start:
        return None
    settled = Window(window.start, max(window.end, (times.get("reverted_at") or 0.0) + SETTLE))
    return window, over, until, settled


def fault_entry(spec, facts: dict, details: dict, times: dict, records: list[dict], streams: list[dict],
                flows: list[tuple[str, str]], baseline: Window, injections: list[float], traffic_end: float,
                error_points: float, latency_factor: float, service_of: dict[str, str] | None = None) -> dict:
    """One fault's journal entry. `times`: injected_at, reverted_at, ended_at (seconds since
    the traffic start, None when it did not happen); `injections`: every fault's scheduled
    `at` (the next one cuts this one's measurements); `service_of`: pod -> its service (to
    tell the target's own flows from the others)."""
    entry = {"kind": spec.kind, "target": spec.target.__dict__, "at": spec.at, "duration": spec.duration,
             "options": dict(spec.options), **times, **facts}
    entry["identities_exposed"] = details.get("identities_exposed", [])
    entry["reachable_pairs"] = details.get("reachable_pairs", [])
    entry["details"] = {k: v for k, v in details.items() if k not in ("identities_exposed", "reachable_pairs")}
    if times.get("injected_at") is None:
        entry["measured"] = False  # never injected (the run stopped first): no blast radius to report
        return entry
    w = windows(spec, times, injections, traffic_end)
    entry["measured"] = w is not None
    if w is None:
        return entry
    window, over, until, settled = w
    entry.update(blast_radius(records, flows, baseline, window, over, error_points, latency_factor, end=until))
    entry["long_lived"] = long_lived(streams, flows, baseline, settled)
    entry["failed_split"] = failed_split(records, Window(window.start, min(window.end, until)), spec.at + spec.duration)
    if service_of is not None and "target_pods" in facts:
        entry["flows_beyond_target"] = neighbours.beyond_target(entry["flows"], set(facts["target_pods"]), service_of)
    if "sharing_flows" in details:
        entry["neighbours"] = neighbours.groups(entry["flows"], details["sharing_flows"], details["apart_flows"])
    return entry


def failed_split(records: list[dict], window: Window, revert_begins: float) -> dict:
    """Failed requests in the fault window (raw counts), before the revert began and from
    then on: what the fault did, and what undoing it cost (e.g. the cold restart a refused
    hot restart forces)."""
    failed = [r["t"] for r in records if window.holds(r["t"]) and r.get("status") != 200
              and r.get("error") != "generator-overload"]
    before = sum(t < revert_begins for t in failed)
    return {"until_revert": before, "from_revert": len(failed) - before}


def clean_window(records: list[dict]) -> dict:
    """Requests, failures and p99 of the window after every revert (it must be error-free)."""
    ok_ms = [r["latency_ms"] for r in records if r.get("status") == 200]
    return {"requests": len(records), "failed": len(records) - len(ok_ms),
            "p99_ms": round(percentile(ok_ms, 99), 3) if ok_ms else None}
