"""The cost window of one architecture (experiment `cost:`): idle CPU with no traffic, then
steady open-loop traffic at the experiment's total rate spread over every flow, with the
proxies' and workloads' CPU sampled over the steady part, memory read at its end, each
proxy's config read from its admin, and the requests' latency. What it returns is the
journal's `cost` section for that architecture (docs/experiments.md, "Cost")."""

from __future__ import annotations

import time
from pathlib import Path

from ..chaos.schedule import sleep_until
from ..traffic import driver
from . import cost as costs
from .stats import percentile

WARMUP = 1.0  # seconds of steady traffic before the CPU window opens
TAIL = 0.5  # seconds of traffic after it closes (no request in the window is cut short)


def measure(cluster, mesh, spec, out: Path, progress=lambda msg: None) -> tuple[dict, list[dict]]:
    """(the cost section, the steady window's request records)."""
    plan = cluster.plan
    topo = mesh.topo if mesh is not None else None
    flows = driver.flows(plan)
    progress(f"idle for {spec.idle:g}s")
    a = costs.sample_cpu(plan, topo)
    time.sleep(spec.idle)
    idle = costs.cpu_between(a, costs.sample_cpu(plan, topo))
    per_flow = spec.total_rate / max(len(flows), 1)
    progress(f"steady traffic: {spec.total_rate:g} requests/s over {len(flows)} flows for {spec.seconds:g}s")
    traffic = driver.start(cluster, per_flow, WARMUP + spec.seconds + TAIL, out)
    sleep_until(traffic.start + WARMUP)
    a = costs.sample_cpu(plan, topo)
    sleep_until(traffic.start + WARMUP + spec.seconds)
    steady = costs.cpu_between(a, costs.sample_cpu(plan, topo))
    memory = costs.memory(topo)
    config = costs.config(topo)
    traffic.wait()
    records = [r for r in traffic.read()["requests"] if WARMUP <= r["t"] < WARMUP + spec.seconds]
    traffic.remove()
    return section(plan, topo, spec, flows, idle, steady, memory, config, records), records


def section(plan, topo, spec, flows, idle: dict, steady: dict, memory: dict, config: dict,
            records: list[dict]) -> dict:
    """Pure: the cost section from what was sampled."""
    sent = [r for r in records if r.get("error") != "generator-overload"]
    ok = [r["latency_ms"] for r in sent if r.get("status") == 200]
    window = steady["seconds"] or spec.seconds
    rps = len(sent) / window if window else 0.0
    vcpu = {"proxies": steady["proxies"] / window, "workloads": steady["workloads"] / window,
            "proxies_idle": idle["proxies"] / idle["seconds"] if idle["seconds"] else None}
    per_krps = {k: round(vcpu[k] / (rps / 1000), 4) if rps else None for k in ("proxies", "workloads")}
    proxies = []
    for p in topo.proxies if topo else ():
        proxies.append({"name": p.name, "role": p.role, "node": p.node, "serves": list(p.serves),
                        "identities": list(p.identities), **memory.get(p.name, {}),
                        "cpu_s": steady["per_proxy"].get(p.name), "idle_cpu_s": idle["per_proxy"].get(p.name),
                        "config": config.get(p.name)})
    pss = sum(p.get("pss_kib", 0) for p in proxies) / 1024
    rss = sum(p.get("rss_kib", 0) for p in proxies) / 1024
    return {
        "load": {"total_rate": spec.total_rate, "per_flow_rate": round(spec.total_rate / max(len(flows), 1), 3),
                 "flows": len(flows), "window_s": round(window, 3), "measured_rps": round(rps, 1),
                 "requests": len(sent), "failed": len(sent) - len(ok), "not_sent": len(records) - len(sent)},
        "idle": idle, "steady": steady,
        "vcpu": {k: (round(v, 4) if v is not None else None) for k, v in vcpu.items()},
        "vcpu_per_krps": per_krps,
        "proxy_share": round(steady["proxies"] / (steady["proxies"] + steady["workloads"]), 4)
        if steady["proxies"] + steady["workloads"] else None,
        "memory": {"pss_mib": round(pss, 2), "rss_mib": round(rss, 2), "pods": len(plan.pods),
                   "pss_per_pod_mib": round(pss / len(plan.pods), 3) if plan.pods else None},
        "proxies_count": len(proxies), "proxies": proxies,
        "config_totals": _config_totals(proxies),
        "latency_ms": {f"p{q}": round(percentile(ok, q), 3) if ok else None for q in (50, 90, 99)} | {"n": len(ok)},
        "hops": costs.hops(plan, topo, flows),
    }


def _config_totals(proxies: list[dict]) -> dict:
    known = [p["config"] for p in proxies if p.get("config")]
    out = {k: sum(c[k] for c in known) for k in ("bytes", "listeners", "clusters", "endpoints", "routes", "secrets")}
    out["per_proxy_bytes_max"] = max((c["bytes"] for c in known), default=0)
    out["proxies_read"] = len(known)
    return out
