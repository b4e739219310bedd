"""What a mesh costs, measured on the running proxies themselves:

- memory: PSS per proxy (`smaps_rollup`: the shared Envoy binary is counted once across
  proxies, where RSS counts it in every one), RSS beside it only for comparison;
- CPU: the seconds each proxy's cgroup consumed (`cpu.stat` usage_usec) over a window, and
  the workloads' (the pods' cgroups: app servers and their load-generating clients) over
  the same window, so the proxies' share shows;
- config: per proxy, from its own admin `/config_dump` (what Envoy holds, not what our
  templates meant): bytes, listeners, clusters, endpoints, routes, secrets (distinct TLS
  certificates, inline or SDS);
- hops: how many proxies a request crosses on each flow.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from ..cluster import cgroups
from ..mesh import admin
from ..mesh.topology import MeshTopology, path
from .memory import pss_kib, rss_kib


def cpu_usec(cgroup_rel: str) -> int:
    """CPU time (microseconds) every process of a cgroup v2 directory has used, dead ones
    included (the kernel keeps the sum; the file exists whether or not the cpu controller
    is enabled)."""
    try:
        with open(os.path.join(cgroups.path(cgroup_rel), "cpu.stat")) as f:
            for line in f:
                key, value = line.split()
                if key == "usage_usec":
                    return int(value)
    except (FileNotFoundError, ValueError):
        pass
    return 0


@dataclass
class CpuSample:
    at: float  # time.monotonic()
    proxies: dict[str, int]  # proxy -> usage_usec
    workloads: int  # usage_usec of every pod's cgroup


def sample_cpu(plan, topo: MeshTopology | None) -> CpuSample:
    return CpuSample(time.monotonic(), {p.name: cpu_usec(p.cgroup) for p in (topo.proxies if topo else ())},
                     sum(cpu_usec(p.cgroup) for p in plan.pods))


def cpu_between(a: CpuSample, b: CpuSample) -> dict:
    """Seconds of CPU over the window from a to b, per proxy, for all proxies and for the
    workloads, and the window's length."""
    per = {name: (b.proxies.get(name, 0) - used) / 1e6 for name, used in a.proxies.items()}
    return {"seconds": round(b.at - a.at, 3), "per_proxy": {k: round(v, 4) for k, v in per.items()},
            "proxies": round(sum(per.values()), 4), "workloads": round((b.workloads - a.workloads) / 1e6, 4)}


def memory(topo: MeshTopology | None) -> dict[str, dict]:
    """PSS and RSS (KiB) per proxy: every process in its cgroup (two during a hot restart)."""
    out = {}
    for p in topo.proxies if topo else ():
        pss = rss = 0
        for pid in cgroups.procs(p.cgroup):
            try:
                pss += pss_kib(pid)
                rss += rss_kib(pid)
            except (OSError, ValueError):
                continue  # exited meanwhile
        out[p.name] = {"pss_kib": pss, "rss_kib": rss}
    return out


def _certificates(node, found: set) -> None:
    """Every TLS certificate (its chain's file or inline bytes) anywhere in a config tree."""
    if isinstance(node, dict):
        for key in ("tls_certificates", "tls_certificate"):
            certs = node.get(key)
            for cert in certs if isinstance(certs, list) else [certs] if isinstance(certs, dict) else []:
                chain = cert.get("certificate_chain", {})
                found.add(json.dumps(chain, sort_keys=True))
        for value in node.values():
            _certificates(value, found)
    elif isinstance(node, list):
        for value in node:
            _certificates(value, found)


def config_counts(dump: dict, raw_bytes: int) -> dict:
    """Sizes of one Envoy's config, from its admin config_dump (parsed)."""
    counts = {"bytes": raw_bytes, "listeners": 0, "clusters": 0, "endpoints": 0, "routes": 0, "secrets": 0}
    certs: set = set()
    for section in dump.get("configs", []):
        kind = section.get("@type", "").rsplit(".", 1)[-1]
        if kind == "ListenersConfigDump":
            listeners = section.get("static_listeners", []) + section.get("dynamic_listeners", [])
            counts["listeners"] = len(listeners)
            _certificates(listeners, certs)
        elif kind == "ClustersConfigDump":
            clusters = section.get("static_clusters", []) + section.get("dynamic_active_clusters", [])
            counts["clusters"] = len(clusters)
            for c in clusters:
                for group in c.get("cluster", {}).get("load_assignment", {}).get("endpoints", []):
                    counts["endpoints"] += len(group.get("lb_endpoints", []))
            _certificates(clusters, certs)
        elif kind == "RoutesConfigDump":
            for rc in section.get("static_route_configs", []) + section.get("dynamic_route_configs", []):
                for vhost in rc.get("route_config", {}).get("virtual_hosts", []):
                    counts["routes"] += len(vhost.get("routes", []))
        elif kind == "SecretsConfigDump":
            for s in section.get("static_secrets", []) + section.get("dynamic_active_secrets", []):
                certs.add(s.get("name", json.dumps(s, sort_keys=True)))
    counts["secrets"] = len(certs)
    return counts


def config(topo: MeshTopology | None) -> dict[str, dict]:
    """Per proxy, the sizes of the config it actually holds (None where the admin did not
    answer)."""
    out = {}
    for p in topo.proxies if topo else ():
        try:
            status, body = admin.request(p.netns, p.admin_port, "/config_dump", timeout=10)
            out[p.name] = config_counts(json.loads(body), len(body.encode())) if status == 200 else None
        except (OSError, ValueError):
            out[p.name] = None
    return out


def hops(plan, topo: MeshTopology | None, flows: list[tuple[str, str]]) -> dict[str, dict]:
    """Per flow, the proxies a request crosses, by role, in order."""
    out = {}
    for src, dst in flows:
        roles = path(plan, topo, src, dst) if topo else []
        out[f"{src}->{dst}"] = {"hops": len(roles), "roles": roles}
    return out
