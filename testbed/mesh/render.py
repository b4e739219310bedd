"""Envoy configs, rendered from the templates in envoy_configs/ (one per role) with a context
computed here from the plan: who may call whom, where each service's pods are, which key
each hop presents and which SAN it expects."""

from __future__ import annotations

import functools
import json
import types
from pathlib import Path

import jinja2
import yaml

from ..cluster.plan import ClusterPlan
from . import split_configs
from . import tuning as tuning_mod
from .config_parts import allowed_callers, cluster, endpoints, known_services, local_cluster, mesh_cluster
from .topology import FINAL_HOP_MARK, MeshTopology, Proxy

__all__ = ["TEMPLATES", "allowed_callers", "known_services", "context", "render"]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
TEMPLATES = Path(__file__).resolve().parent.parent.parent / "envoy_configs"


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


def context(plan: ClusterPlan, topo: MeshTopology, proxy: Proxy, certs: str, redirect: str = "ebpf",
            wasm: dict | None = None, tuning: dict | None = None) -> dict:
    """`wasm`: service -> a Wasm extension on its inbound; `tuning`: pod -> settings on the
    routes and clusters carrying its traffic (mesh/tuning.py). Both are chaos's."""
    td = plan.spec.mesh.trust_domain
    # eBPF capture hands a node-level proxy connections still addressed to the pod: the
    # listener must be transparent to answer from an address that is not its own
    ctx = {"p": proxy, "certs": certs, "trust_domain": td, "connect_timeout": f"{plan.spec.mesh.connect_timeout:g}s",
           "transparent": redirect == "ebpf" and proxy.role in ("node", "node-sa", "ztunnel"),
           "wasm": wasm or {},  # service -> a Wasm extension on its inbound (chaos)
           "stats": plan.spec.mesh.stats}
    if proxy.role == "sidecar":
        pod = plan.pod(proxy.serves[0])
        outbound, clusters = [], []
        for svc in known_services(plan, {pod.service}):
            name = f"out|{svc.name}"
            outbound.append({"service": svc.name, "vip": svc.vip, "port": svc.port, "cluster": name})
            clusters.append(mesh_cluster(name, endpoints(plan, svc.name), pod.service_account, svc.service_account,
                                         td))
        inbound = {"service": pod.service, "port": pod.port, "sa": pod.service_account,
                   "allowed": allowed_callers(plan, pod.service), "cluster": f"in|{pod.service}"}
        clusters.append(local_cluster(inbound["cluster"], pod.port))
        ctx.update(outbound=outbound, inbound=inbound, clusters=clusters)
    elif proxy.role in ("node", "node-sa"):
        pods = [plan.pod(name) for name in proxy.serves]
        outbound, inbound, clusters = [], [], []
        for sa in proxy.identities:
            sources = [p.ip for p in pods if p.service_account == sa]
            for svc in known_services(plan, {p.service for p in pods if p.service_account == sa}):
                name = f"out|{sa}|{svc.name}"
                outbound.append({"sa": sa, "service": svc.name, "vip": svc.vip, "port": svc.port,
                                 "sources": sources, "cluster": name})
                clusters.append(mesh_cluster(name, endpoints(plan, svc.name), sa, svc.service_account, td))
        for service in dict.fromkeys(p.service for p in pods):
            local = [p for p in pods if p.service == service]
            inbound.append({"service": service, "port": local[0].port, "pods": [p.ip for p in local],
                            "sa": local[0].service_account, "allowed": allowed_callers(plan, service),
                            "cluster": "in|final"})
        clusters.append(cluster("in|final", mark=FINAL_HOP_MARK, original_dst=True))
        ctx.update(outbound=outbound, inbound=inbound, clusters=clusters)
    elif proxy.role in ("micro", "ztunnel"):
        ctx.update(split_configs.l4_context(plan, topo, proxy))
    elif proxy.role == "l7":
        ctx.update(split_configs.waypoint_context(plan, topo, proxy))
    ctx["touched"] = tuning_mod.apply(ctx, plan, proxy, tuning)
    return ctx


# Stands for the proxy's own certs directory in a text shared by several proxies. Every
# sidecar of one service has the same config but for that directory and its ports: 200
# sidecars of 20 services are 20 renders.
CERTS = "@CERTS@"
PORTS = ("admin_port", "outbound_port", "inbound_port", "hbone_port")  # all of the proxy the templates use


def _to_json(role: str, ctx: dict) -> str:
    """The YAML template rendered, checked to parse (a template bug shows here) and handed to
    Envoy as compact JSON: Envoy parses JSON with less CPU than YAML (~20 ms of the ~150 ms
    a start takes with 20 services). The endpoint lists, most of a config's size (every pod
    of every service the proxy knows), are rendered as one stand-in endpoint each and put
    back after parsing: PyYAML builds each node in Python, 0.9 of the 1.0 CPU-second that
    rendering a 200-pod sidecar mesh took."""
    ctx, lists = _stand_ins(ctx)
    text = _env().get_template(f"{role}.yaml.j2").render(**ctx)
    config = yaml.load(text, Loader=_LOADER)
    if lists:
        _put_back(config, lists)
    return json.dumps(config, separators=(",", ":"))


_STAND_IN = "tb-endpoints-{}"  # where a cluster's endpoint list goes (a plain YAML scalar)


def _stand_ins(ctx: dict) -> tuple[dict, dict]:
    """ctx with each cluster of several address endpoints ({ip, port}, as config_parts makes
    them) holding one stand-in instead, and the lists as Envoy's lb_endpoints, by stand-in."""
    lists, clusters = {}, []
    for c in ctx.get("clusters") or []:
        eps = c.get("endpoints") or []
        if len(eps) > 1 and all(isinstance(e, dict) and e.keys() == {"ip", "port"} for e in eps):
            key = _STAND_IN.format(len(lists))
            lists[key] = [{"endpoint": {"address": {"socket_address": {"address": e["ip"], "port_value": e["port"]}}}}
                          for e in eps]
            c = {**c, "endpoints": [{"ip": key, "port": 1}]}
        clusters.append(c)
    return ({**ctx, "clusters": clusters} if lists else ctx), lists


def _put_back(config: dict, lists: dict) -> None:
    for c in config.get("static_resources", {}).get("clusters", []):
        for group in c.get("load_assignment", {}).get("endpoints", []):
            eps = group.get("lb_endpoints") or []
            if len(eps) == 1:
                address = eps[0].get("endpoint", {}).get("address", {}).get("socket_address", {}).get("address")
                if address in lists:
                    group["lb_endpoints"] = lists.pop(address)
    if lists:  # a template that renders endpoints elsewhere: a bug to see here, not in Envoy
        raise AssertionError(f"endpoint lists not found in the rendered config: {sorted(lists)}")


@functools.lru_cache(maxsize=256)
def _cached(role: str, key: str) -> str:
    ctx = json.loads(key)
    ctx["p"] = types.SimpleNamespace(**ctx["p"])
    return _to_json(role, ctx)


def render(plan: ClusterPlan, topo: MeshTopology, proxy: Proxy, certs: str, redirect: str = "ebpf",
           wasm: dict | None = None, tuning: dict | None = None) -> str:
    """The proxy's Envoy config as JSON text, rendered once per distinct context."""
    ctx = context(plan, topo, proxy, CERTS, redirect, wasm, tuning)
    ctx["p"] = {k: getattr(proxy, k) for k in PORTS}
    try:
        key = json.dumps(ctx, sort_keys=True)
    except TypeError:  # something in the context JSON cannot hold: render it as it is
        ctx["p"] = proxy
        text = _to_json(proxy.role, ctx)
    else:
        text = _cached(proxy.role, key)
    return text.replace(CERTS, json.dumps(certs)[1:-1])
