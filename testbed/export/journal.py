"""A Kubernetes run's journal, in the testbed's own format (testbed/journal/, version 2)
with `"engine": "kubernetes"`, so a report draws it beside a local run. Pure: it takes what
`collect` read (the Jobs' records, the chaos timeline) and the export's own description.

Times: the traffic's zero is the earliest start of any Job pod (each prints its start);
a fault's window is where Chaos Mesh says it acted (its Applied and Recovered events, else
its workflow node's start and deadline), not where the export scheduled it, and says which
(`details.timing`). A kill is over when it happened (the kubelet restarts at once), so
recovery is measured from the kill, where the testbed waits `restartDelay`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from ..journal.schema import KIND, VERSION
from ..measure.blast import Window, blast_radius, cutoff, long_lived
from ..measure.stats import percentile

KILLS = {"proxy-crash"}


@dataclass
class Traffic:
    """What the Jobs printed, times still epochs."""

    starts: dict[str, float] = field(default_factory=dict)  # source pod -> its start
    requests: list[dict] = field(default_factory=list)
    streams: list[dict] = field(default_factory=list)
    clean: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class FaultTiming:
    """When Chaos Mesh acted on one fault (epochs; None when nothing says)."""

    injected: float | None = None
    recovered: float | None = None
    hit: list[str] = field(default_factory=list)  # the pods or containers it applied to
    source: str = "none"  # events | workflow | none


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="milliseconds")


def _relative(records: list[dict], t0: float) -> list[dict]:
    return [dict({k: v for k, v in r.items() if k != "kind"}, t=round(r["t"] - t0, 4)) for r in records]


def clean_after(clean: list[dict]) -> dict:
    ok = [r["latency_ms"] for r in clean if r.get("status") == 200]
    return {"requests": len(clean), "failed": len(clean) - len(ok),
            "p99_ms": round(percentile(ok, 99), 3) if ok else None}


def _placement(fault: dict, timing: FaultTiming, t0: float) -> tuple[float, float, str]:
    """(at, duration) in traffic seconds, and whether they were observed or scheduled."""
    if timing.injected is None:
        return fault["at"], fault["duration"], "scheduled"
    at = timing.injected - t0
    if timing.recovered is not None and fault["kind"] not in KILLS:
        return at, max(timing.recovered - timing.injected, 0.0), "observed"
    return at, fault["duration"], "observed"


def _omitted(fault: dict, flows: list) -> dict:
    return {"kind": fault["kind"], "target": fault["target"], "at": fault["at"], "duration": fault["duration"],
            "description": f"{fault['kind']} on {fault['target']['kind']} {fault['target']['name']}: left out",
            "omitted": fault["reason"], "flows_total": len(flows), "flows_affected": None, "pods_served": None,
            "long_lived": None, "identities_exposed": [], "reachable_pairs": []}


def arch_result(arch: str, spec: dict, meta: dict, traffic: Traffic, timings: dict[int, FaultTiming]) -> dict:
    """One architecture's part of the journal. `spec` is the export's architecture entry,
    `meta` the export's top (traffic, affected)."""
    t0 = min(traffic.starts.values())
    records, streams = _relative(traffic.requests, t0), _relative(traffic.streams, t0)
    flows = [tuple(f) for f in spec["flows"]]
    duration = meta["traffic"]["duration"]
    points, factor = meta["affected"]["errorPoints"], meta["affected"]["latencyFactor"]
    placed = {f["index"]: _placement(f, timings.get(f["index"], FaultTiming()), t0) for f in spec["faults"]}
    baseline = Window(1.0, min([at for at, _, _ in placed.values()] + [duration]))
    entries = {f["index"]: _omitted(f, flows) for f in spec["omitted"]}
    for f in spec["faults"]:
        at, length, how = placed[f["index"]]
        timing = timings.get(f["index"], FaultTiming())
        window = Window(at, at + max(length, 1.0))
        revert_at = at if f["kind"] in KILLS else at + length
        until = cutoff(at, [a for a, _, _ in placed.values()], duration)
        settled = Window(window.start, max(window.end, revert_at + 2 * meta["traffic"]["longLivedInterval"]))
        entries[f["index"]] = {
            "kind": f["kind"], "target": f["target"], "at": round(at, 3), "duration": round(length, 3),
            "description": f["description"], "proxies_hit": len(timing.hit) if timing.hit else len(f["proxies"]),
            "proxies": f["proxies"], "pods_served": len(f["pods_served"]), "pods_served_list": f["pods_served"],
            **blast_radius(records, flows, baseline, window, revert_at, points, factor, end=until),
            "long_lived": long_lived(streams, flows, baseline, settled),
            "identities_exposed": [], "reachable_pairs": [],
            "details": {"timing": how, "timeline_from": timing.source, "scheduled_at": f["at"],
                        "chaos": f["chaos"], "templates": f["templates"], "hit": timing.hit, "notes": f["notes"]}}
    starts = sorted(traffic.starts.values())
    return {"architecture": arch, "status": "completed" if records else "failed",
            "error": None if records else "no traffic records were collected", "cost": None,
            "engine": "kubernetes", "dataplane": spec["engine"], "namespace": spec["namespace"],
            "run": spec["namespace"], "faults": [entries[i] for i in sorted(entries)], "requests": len(records),
            "clean_after": clean_after(traffic.clean),
            "traffic": {"started": _iso(t0), "pods": len(starts), "skew_s": round(starts[-1] - starts[0], 3),
                        "expected_requests": int(len(flows) * meta["traffic"]["rate"] * duration),
                        "warnings": traffic.warnings}}


def assemble(meta: dict, archs: dict[str, dict], cluster: dict) -> dict:
    """The journal document: the one place its shape is decided (to be handed to the journal
    package's writer once it exists)."""
    started = min((a["traffic"]["started"] for a in archs.values()), default=None)
    failed = any(a.get("status") != "completed" for a in archs.values())
    return {"journal": VERSION, "kind": KIND, "engine": "kubernetes", "simulated": False,
            "status": "failed" if failed else "completed", "experiment": meta.get("experiment"),
            "source": meta["source"], "started": started, "finished": None, "seconds": None,
            "command": "testbed collect", "environment": {"git": meta.get("git"), "kernel": None, "envoy": None,
                                                          "cpus": None, "python": None, "testbed": None},
            "seed": meta.get("seed"), "redirect": None, "repeat": {"index": 0, "of": 1}, "sweep": None,
            "traffic": {k: meta["traffic"][k] for k in ("rate", "duration", "longLivedInterval")},
            "affected": meta["affected"], "spec": meta["spec"], "cluster": meta["cluster"],
            "kubernetes": cluster, "architectures": archs}
