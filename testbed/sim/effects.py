"""Calibrating what faults do, from the faults of real runs and their request records
(docs/simulation.md, "Failures"):

- (restarts.py: how long proxies take to come back)
- effects: for each cause (crash, hang, restart, wasm-loop), role and position of the proxy
  on the flow (source, L7, destination), what the requests crossing it went through while
  it was out, read from the flows every request of which crosses it: when the first went
  bad (`onset`), the share that failed at once (`fail`), how late the waiting ones were
  answered once it was back (`resume`) and whether they were (`served`), and how long
  requests stayed slow after (`after`). Each effect's fit quality is the model's failures
  against the real ones over the same flows, replayed with the fitted effect."""

from __future__ import annotations

from . import fit
from .faults import WASM_FAILS
from .flows import Exposure, FlowIndex, Outage, outcome
from .params import TIMEOUT, Effect
from .placement import SimCluster
from .sources import FaultRun
from .topology import SimTopology


def outages(f: FaultRun, topo: SimTopology) -> list[Outage]:
    """The real fault's outages, from the times the journal recorded."""
    e, by_name = f.entry, topo.by_name
    inj, rev = e["injected_at"], e.get("reverted_at") or e["injected_at"]
    out = []
    if e["kind"] == "proxy-crash":
        out = [Outage(by_name[n].index, inj, e.get("ended_at") or rev, "crash") for n in e["proxies"]]
    elif e["kind"] == "proxy-hang":
        out = [Outage(by_name[n].index, inj, rev, "hang") for n in e["proxies"]]
    elif e["kind"] == "upgrade":
        t = inj
        for u in e["details"].get("upgrades", []):
            if u["strategy"] == "restart":
                out.append(Outage(by_name[u["proxy"]].index, t, t + u["seconds"], "restart"))
            t += u["seconds"]
    elif e["kind"] == "wasm":
        behavior, policy = f.options.get("behavior", "loop"), f.options.get("failurePolicy", "closed")
        kill = e["at"] + e["duration"]  # the revert replaces the process, whatever it was doing
        if behavior == "loop":
            out = [Outage(by_name[n].index, inj, kill, "wasm-loop") for n in e["proxies"]]
        elif policy in WASM_FAILS.get(behavior, ()):
            services = frozenset(_target_services(f))
            out = [Outage(by_name[n].index, inj, kill, "wasm-fail", services) for n in e["proxies"]]
    return out


def _target_services(f: FaultRun) -> set[str]:
    t = f.entry["target"]
    if t["kind"] == "service":
        return {t["name"]}
    pods = [p for p in f.cluster.pods if (p.name == t["name"] if t["kind"] == "pod" else p.node == t["name"])]
    return {p.service for p in pods}


def effects(faults: list[FaultRun], prior: dict | None) -> dict:
    """Per `cause/role/position`: the fitted effect, its quality and its data."""
    groups: dict[str, list[dict]] = {}
    for f in faults:
        if f.entry["kind"] not in ("proxy-crash", "proxy-hang", "upgrade", "wasm"):
            continue
        topo = SimTopology(SimCluster(f.cluster), f.arch)
        records = f.requests()
        index = FlowIndex(topo)
        for o in outages(f, topo):
            for i, ex in index.expose(o, lambda c, r, p: (Effect(), f"{c}/{r}/{p}")):
                if ex.hits is not None:
                    continue  # only flows every request of which crosses the proxy
                flow = index.flows[i]
                base = (f.entry.get("flows") or {}).get(f"{flow[0]}->{flow[1]}", {}).get("baseline", {})
                recs = [r for r in records.get(flow, []) if o.start - 1e-9 <= r["t"] < min(o.end + 2.0, f.next_at)]
                if recs and base.get("p99_ms"):
                    groups.setdefault(ex.effect_key, []).append(
                        {"run": f, "outage": o, "flow": flow, "records": recs, "slow_ms": 3 * base["p99_ms"],
                         "normal_ms": base["p99_ms"]})
    out = {}
    for key, data in sorted(groups.items()):
        out[key] = _fit_effect(key, data)
    for key, e in (prior or {}).items():
        if key not in out:
            out[key] = dict(e, source="prior")
    return out


def _bad(r: dict, slow_ms: float) -> bool:
    return r.get("status") != 200 or r["latency_ms"] > slow_ms


def _fit_effect(key: str, data: list[dict]) -> dict:
    onsets, afters, resumes = [], [], []
    fast = active = served = waits = 0
    points = []
    for d in data:
        o, recs = d["outage"], d["records"]
        bad_in = [r for r in recs if r["t"] < o.end and _bad(r, d["slow_ms"])]
        # from the first request after the outage began (the schedule's own gap is not the effect's)
        onset = (bad_in[0]["t"] - min(r["t"] for r in recs)) if bad_in else None
        if onset is not None:
            onsets.append(onset)
        start = o.start + (onset or 0.0)
        act = [r for r in recs if start <= r["t"] < o.end]
        f_fast = [r for r in act if r.get("status") != 200 and r["latency_ms"] < 900 * TIMEOUT
                  and r["t"] + r["latency_ms"] / 1000 < o.end - 0.05]
        rest = [r for r in act if r not in f_fast]
        ok = [r for r in rest if r.get("status") == 200]
        for r in ok:
            resumes.append(r["latency_ms"] / 1000 - (o.end - r["t"]))
        fast, active = fast + len(f_fast), active + len(act)
        eligible = [r for r in rest if o.end - r["t"] < TIMEOUT - 0.3]
        served += sum(r.get("status") == 200 for r in eligible)
        waits += len(eligible)
        tail = [r for r in recs if r["t"] >= o.end and _bad(r, d["slow_ms"])]
        after = (tail[-1]["t"] - o.end + 0.1) if tail else 0.0
        afters.append(after)
        points.append({"journal": d["run"].journal, "arch": d["run"].arch, "fault": d["run"].index,
                       "flow": f"{d['flow'][0]}->{d['flow'][1]}", "out": [round(o.start, 3), round(o.end, 3)],
                       "onset": None if onset is None else round(onset, 3), "active": len(act),
                       "failed_at_once": len(f_fast), "waited": len(rest), "answered": len(ok),
                       "failed": sum(r.get("status") != 200 for r in recs), "after": round(after, 3)})
    effect = Effect(onset=max(fit.spread(onsets)["value"] or 0.0, 0.0), fail=fast / active if active else 1.0,
                    served=served / waits if waits else 1.0, resume=max(fit.spread(resumes)["value"] or 0.0, 0.0),
                    after=fit.spread(afters)["value"] or 0.0, source="fit")
    predicted, observed = _replay(effect, data)
    entry = {f: {"value": round(getattr(effect, f), 4)} for f in ("onset", "fail", "served", "resume", "after")}
    entry.update(source="fit", unit="s (onset, resume, after); shares (fail, served)",
                 fit={"flows": len(data), "requests_active": active, "failed_observed": observed,
                      "failed_replayed": predicted,
                      "error": round(abs(predicted - observed) / observed, 3) if observed else None},
                 points=points)
    return entry


def _replay(effect: Effect, data: list[dict]) -> tuple[int, int]:
    """Failures the fitted effect gives on the data's own flows, and those observed."""
    predicted = observed = 0
    for d in data:
        o, recs = d["outage"], d["records"]
        ex = Exposure(o, "source", None, effect, "replay")
        counters = [0, 0]
        for r in recs:
            got = outcome(ex, counters, r["t"], d["normal_ms"])
            predicted += bool(got and got.failed)
            observed += r.get("status") != 200
    return predicted, observed
