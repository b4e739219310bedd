"""The cost section of a simulated architecture, in the shape measure/costrun.py gives a real
one, from the model's parameters (docs/simulation.md, "Cost"):

- config: counted per proxy as the renderer would produce it (config.py); its bytes from
  the fitted bytes per listener, cluster, endpoint, route and secret;
- memory: per proxy, a private part (a base plus a cost per listener, cluster, endpoint,
  route and secret) and the Envoy image shared by every proxy on one host, counted by PSS
  as the kernel does: shared / proxies on that host. `hosts` says what a host is: the one
  `machine` every proxy shares in the testbed, or each `node` of a real cluster (the
  waypoints' node is one too);
- CPU: each proxy idles at its role's rate and spends its role's vCPU per 1,000 requests
  crossing it; the traffic is the cost window's total rate spread evenly over the flows,
  and a flow's requests spread evenly over its service's replicas (a shared proxy crossed
  twice works twice);
- latency: the `none` baseline's plus each crossed proxy's added latency, by role and
  redirection; hops as mesh.topology.path counts them.

Beside the real shape, `scoping` holds config and memory under both `mesh.scope` values
(Istio's Sidecar resource, or not), and past PER_PROXY_LIMIT proxies the per-proxy lists
give way to `proxies_summary` (per role), to keep the journal readable."""

from __future__ import annotations

import statistics

from .config import COUNTS, ConfigModel
from .params import Params
from .topology import SimTopology

PER_PROXY_LIMIT = 2000
QUANTILES = ("p50", "p90", "p99")


def config_bytes(p: Params, counts: dict) -> int:
    return round(p.bytes_base + sum(p.bytes_per[k] * counts[k] for k in COUNTS))


def private_kib(p: Params, counts: dict) -> float:
    return p.base_kib + sum(p.per_kib[k] * counts[k] for k in COUNTS)


def _hosts(topo: SimTopology, hosts: str) -> dict[str, int]:
    """Proxies per host: one machine, or one per node."""
    if hosts == "machine":
        return {"machine": len(topo.proxies)}
    out: dict[str, int] = {}
    for proxy in topo.proxies:
        out[proxy.node] = out.get(proxy.node, 0) + 1
    return out


def passes(topo: SimTopology, per_flow: float) -> list[float]:
    """Requests per second crossing each proxy (twice when it is crossed twice)."""
    load = [0.0] * len(topo.proxies)
    c = topo.cluster
    into: dict[str, float] = {}
    for src, dst in c.flows:
        k = topo.serving.get(src)
        if k is not None:
            load[k] += per_flow
        into[dst] = into.get(dst, 0.0) + per_flow
    for service, rate in into.items():
        l7 = topo.l7_for(service)
        if l7 is not None:
            load[l7.index] += rate
        pods = c.pods_by_service[service]
        for pod in pods:
            k = topo.serving.get(pod.name)
            if k is not None:
                load[k] += rate / len(pods)
    return load


def memory_and_config(topo: SimTopology, p: Params, hosts: str, scope: str | None = None) -> list[dict]:
    """Per proxy: its config counts and bytes, private, PSS and RSS (KiB)."""
    model = ConfigModel(topo.cluster, scope)
    sharing = _hosts(topo, hosts)
    out = []
    for proxy in topo.proxies:
        counts = model.counts(proxy)
        private = private_kib(p, counts)
        n = sharing["machine" if hosts == "machine" else proxy.node]
        out.append({"config": {"bytes": config_bytes(p, counts), **counts},
                    "pss_kib": round(private + p.shared_kib / n), "rss_kib": round(private + p.shared_kib)})
    return out


def _latency(topo: SimTopology, p: Params, redirect: str) -> tuple[dict, dict, dict]:
    """(latency percentiles, latency added, hops per flow). Past PER_PROXY_LIMIT flows, hops
    are given per distinct path (`"<roles> (N flows)"`), not per flow."""
    hops, per_flow, paths = {}, {q: [] for q in QUANTILES}, {}
    c = topo.cluster
    for src, dst in c.flows:
        replica = c.pods_by_service[dst][0].name
        roles = [topo.proxies[k].role for k in topo.path(src, replica, dst)] if topo.proxies else []
        hops[f"{src}->{dst}"] = {"hops": len(roles), "roles": roles}
        paths[tuple(roles)] = paths.get(tuple(roles), 0) + 1
        for q in QUANTILES:
            per_flow[q].append(sum(p.hop_ms(redirect, r, q) for r in roles))
    if len(hops) > PER_PROXY_LIMIT:
        hops = {f"{','.join(r) or 'direct'} ({n} flows)": {"hops": len(r), "roles": list(r), "flows": n}
                for r, n in paths.items()}
    added = {q: round(statistics.median(v), 3) if v else 0.0 for q, v in per_flow.items()}
    latency = {q: round(p.latency_none[q] + added[q], 3) for q in QUANTILES}
    method = "model: the calibration's latency per proxy crossed, by role and redirection"
    added_ms = {q: {"estimate": added[q], "low": added[q], "high": added[q], "significant": added[q] > 0,
                    "method": method} for q in QUANTILES}
    return latency, added_ms, hops


def at_rate(topo: SimTopology, p: Params, per_flow: float) -> dict:
    """Proxy vCPU with every flow at `per_flow` requests/s (the experiment's traffic rate:
    the cost window's total is capped at 5,000 requests/s, a cluster's traffic is not)."""
    vcpu = sum((p.cpu_idle.get(x.role) or 0.0) + (p.cpu_per_krps.get(x.role) or 0.0) * through / 1000
               for x, through in zip(topo.proxies, passes(topo, per_flow), strict=True))
    return {"per_flow_rate": per_flow, "requests_per_s": round(per_flow * len(topo.cluster.flows), 1),
            "proxies_vcpu": round(vcpu, 3)}


def section(topo: SimTopology, p: Params, spec, redirect: str, hosts: str, traffic_rate: float | None = None) -> dict:
    """The cost section (measure/costrun.section's shape) for one architecture."""
    c = topo.cluster
    flows = len(c.flows)
    per_flow = spec.total_rate / max(flows, 1)
    rps = per_flow * flows
    load = passes(topo, per_flow)
    mem = memory_and_config(topo, p, hosts)
    proxies, per_proxy, per_idle = [], {}, {}
    for proxy, m, through in zip(topo.proxies, mem, load, strict=True):
        idle = p.cpu_idle.get(proxy.role) or 0.0
        steady = idle + (p.cpu_per_krps.get(proxy.role) or 0.0) * through / 1000
        per_proxy[proxy.name], per_idle[proxy.name] = round(steady * spec.seconds, 4), round(idle * spec.idle, 4)
        proxies.append({"name": proxy.name, "role": proxy.role, "node": proxy.node, "serves": list(proxy.serves),
                        "identities": list(proxy.identities), "pss_kib": m["pss_kib"], "rss_kib": m["rss_kib"],
                        "cpu_s": per_proxy[proxy.name], "idle_cpu_s": per_idle[proxy.name], "config": m["config"],
                        "requests_per_s": round(through, 3)})
    cpu = sum(per_proxy.values())
    workloads = p.workloads_per_krps * rps / 1000 * spec.seconds
    idle_cpu = sum(per_idle.values())
    pss = sum(x["pss_kib"] for x in proxies) / 1024
    rss = sum(x["rss_kib"] for x in proxies) / 1024
    latency, added, hops = _latency(topo, p, redirect)
    big = len(proxies) > PER_PROXY_LIMIT
    out = {
        "load": {"total_rate": spec.total_rate, "per_flow_rate": round(per_flow, 3), "flows": flows,
                 "window_s": spec.seconds, "measured_rps": round(rps, 1), "requests": round(rps * spec.seconds),
                 "failed": 0, "not_sent": 0},
        "idle": {"seconds": spec.idle, "per_proxy": {} if big else per_idle, "proxies": round(idle_cpu, 4),
                 "workloads": 0.0},
        "steady": {"seconds": spec.seconds, "per_proxy": {} if big else per_proxy, "proxies": round(cpu, 4),
                   "workloads": round(workloads, 4)},
        "vcpu": {"proxies": round(cpu / spec.seconds, 4), "workloads": round(workloads / spec.seconds, 4),
                 "proxies_idle": round(idle_cpu / spec.idle, 4)},
        "vcpu_per_krps": {"proxies": round(cpu / spec.seconds / (rps / 1000), 4) if rps else None,
                          "workloads": round(workloads / spec.seconds / (rps / 1000), 4) if rps else None},
        "proxy_share": round(cpu / (cpu + workloads), 4) if cpu + workloads else None,
        "memory": {"pss_mib": round(pss, 2), "rss_mib": round(rss, 2), "pods": len(c.pods),
                   "pss_per_pod_mib": round(pss / len(c.pods), 3) if c.pods else None},
        "proxies_count": len(proxies), "proxies": [] if big else proxies,
        "proxies_summary": summary(proxies),
        "config_totals": totals([x["config"] for x in proxies]),
        "latency_ms": latency | {"n": round(rps * spec.seconds)},
        "latency_added_ms": added,
        "hops": hops,
        "hosts": hosts,
        "latency_from": redirect if redirect in p.per_hop else
        f"{next(iter(p.per_hop), 'nothing')}: the calibration has no {redirect} runs",
        "scoping": scoping(topo, p, hosts),
    }
    if traffic_rate:
        out["at_traffic_rate"] = at_rate(topo, p, traffic_rate)
    return out


def totals(configs: list[dict]) -> dict:
    out = {k: sum(c[k] for c in configs) for k in ("bytes", *COUNTS)}
    out["per_proxy_bytes_max"] = max((c["bytes"] for c in configs), default=0)
    out["proxies_read"] = len(configs)
    return out


def summary(proxies: list[dict]) -> dict:
    """Per role: how many, and their memory, config and load (mean and largest)."""
    out = {}
    for role in dict.fromkeys(x["role"] for x in proxies):
        mine = [x for x in proxies if x["role"] == role]
        out[role] = {"count": len(mine), "pss_kib_mean": round(statistics.fmean(x["pss_kib"] for x in mine)),
                     "config_bytes_mean": round(statistics.fmean(x["config"]["bytes"] for x in mine)),
                     "config_bytes_max": max(x["config"]["bytes"] for x in mine),
                     "clusters_max": max(x["config"]["clusters"] for x in mine),
                     "identities_max": max(len(x["identities"]) for x in mine),
                     "requests_per_s_max": max(x["requests_per_s"] for x in mine)}
    return out


def scoping(topo: SimTopology, p: Params, hosts: str) -> dict:
    """Config and memory with every service known (`all`) and with only the called ones
    (`calls`): what scoping a proxy's view buys."""
    out = {}
    for scope in ("all", "calls"):
        mem = memory_and_config(topo, p, hosts, scope)
        configs = [m["config"] for m in mem]
        out[scope] = {"per_proxy_bytes_max": max((c["bytes"] for c in configs), default=0),
                      "per_proxy_bytes_mean": round(statistics.fmean(c["bytes"] for c in configs)) if configs else 0,
                      "clusters_total": sum(c["clusters"] for c in configs),
                      "endpoints_total": sum(c["endpoints"] for c in configs),
                      "pss_mib": round(sum(m["pss_kib"] for m in mem) / 1024, 2)}
    return out
