"""Envoy configs, rendered from the templates in envoy_configs/ (one per role) with a context
computed here from the plan: who may call whom, where each service's pods are, which key
each hop presents and which SAN it expects."""

from __future__ import annotations

import functools
import json
import types
from pathlib import Path

import jinja2

from ..cluster.plan import ClusterPlan
from ..identity import spiffe_id
from .topology import FINAL_HOP_MARK, MeshTopology, Proxy, l7_port

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "envoy_configs"


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


def allowed_callers(plan: ClusterPlan, service: str) -> list[str]:
    """SPIFFE IDs allowed to call `service`: the accounts of the services that call it."""
    td = plan.spec.mesh.trust_domain
    return sorted({spiffe_id(td, plan.spec.service(s).service_account) for s in plan.spec.callers_of(service)})


def known_services(plan: ClusterPlan, callers: set[str]) -> list:
    """The services a proxy serving pods of `callers` (service names) configures: every one
    (`mesh.scope: all`, the default), or only those they call (`calls`, as Istio's Sidecar
    resource narrows a proxy's view)."""
    if plan.spec.mesh.scope == "all":
        return list(plan.services)
    called = {c.target for c in plan.spec.calls if c.source in callers}
    return [s for s in plan.services if s.name in called]


def _endpoints(plan: ClusterPlan, service: str) -> list[dict]:
    svc = plan.service(service)
    return [{"ip": plan.pod(p).ip, "port": svc.port} for p in svc.pods]


def _mesh_cluster(name: str, endpoints: list[dict], my_sa: str, peer_sa: str, td: str) -> dict:
    return {"name": name, "endpoints": endpoints, "tls": {"sa": my_sa, "peer": spiffe_id(td, peer_sa)},
            "mark": None, "original_dst": False}


def _local_cluster(name: str, port: int) -> dict:
    return {"name": name, "endpoints": [{"ip": "127.0.0.1", "port": port}], "tls": None, "mark": None,
            "original_dst": False}


def context(plan: ClusterPlan, topo: MeshTopology, proxy: Proxy, certs: str, redirect: str = "ebpf",
            wasm: dict | None = None) -> dict:
    td = plan.spec.mesh.trust_domain
    # eBPF capture hands a node proxy connections still addressed to the pod: the listener
    # must be transparent to answer from an address that is not its own
    ctx = {"p": proxy, "certs": certs, "trust_domain": td, "connect_timeout": f"{plan.spec.mesh.connect_timeout:g}s",
           "transparent": redirect == "ebpf" and proxy.role in ("node", "node-sa"),
           "wasm": wasm or {}}  # service -> a Wasm extension on its inbound (chaos)
    if proxy.role in ("sidecar", "micro"):
        pod = plan.pod(proxy.serves[0])
        outbound, clusters = [], []
        for svc in known_services(plan, {pod.service}):
            cluster = f"out|{svc.name}"
            outbound.append({"service": svc.name, "vip": svc.vip, "port": svc.port, "cluster": cluster})
            spec_svc = plan.spec.service(svc.name)
            if proxy.role == "micro" and spec_svc.l7:
                l7 = topo.l7_for(svc.service_account)
                eps = [{"ip": plan.node(l7.node).fabric_ip, "port": l7_port(plan, svc.name)}]
            else:
                eps = _endpoints(plan, svc.name)
            clusters.append(_mesh_cluster(cluster, eps, pod.service_account, svc.service_account, td))
        if proxy.role == "micro" and plan.spec.service(pod.service).l7:
            # only the account's L7 proxy delivers to it (it speaks as the account itself)
            allowed = [spiffe_id(td, pod.service_account)]
        else:
            allowed = allowed_callers(plan, pod.service)
        inbound = {"service": pod.service, "port": pod.port, "sa": pod.service_account, "allowed": allowed,
                   "cluster": f"in|{pod.service}"}
        clusters.append(_local_cluster(inbound["cluster"], pod.port))
        ctx.update(outbound=outbound, inbound=inbound, clusters=clusters)
    elif proxy.role in ("node", "node-sa"):
        pods = [plan.pod(name) for name in proxy.serves]
        outbound, inbound, clusters = [], [], []
        for sa in proxy.identities:
            sources = [p.ip for p in pods if p.service_account == sa]
            for svc in known_services(plan, {p.service for p in pods if p.service_account == sa}):
                cluster = f"out|{sa}|{svc.name}"
                outbound.append({"sa": sa, "service": svc.name, "vip": svc.vip, "port": svc.port,
                                 "sources": sources, "cluster": cluster})
                clusters.append(_mesh_cluster(cluster, _endpoints(plan, svc.name), sa, svc.service_account, td))
        for service in dict.fromkeys(p.service for p in pods):
            local = [p for p in pods if p.service == service]
            inbound.append({"service": service, "port": local[0].port, "pods": [p.ip for p in local],
                            "sa": local[0].service_account, "allowed": allowed_callers(plan, service),
                            "cluster": "in|final"})
        clusters.append({"name": "in|final", "endpoints": [], "tls": None, "mark": FINAL_HOP_MARK,
                         "original_dst": True})
        ctx.update(outbound=outbound, inbound=inbound, clusters=clusters)
    elif proxy.role == "l7":
        sa = proxy.identities[0]
        listeners, clusters = [], []
        for svc in plan.services:
            if svc.service_account != sa or not plan.spec.service(svc.name).l7:
                continue
            cluster = f"l7|{svc.name}"
            listeners.append({"service": svc.name, "port": l7_port(plan, svc.name), "sa": sa,
                              "allowed": allowed_callers(plan, svc.name), "cluster": cluster})
            clusters.append(_mesh_cluster(cluster, _endpoints(plan, svc.name), sa, sa, td))
        ctx.update(listeners=listeners, clusters=clusters)
    return ctx


# Stands for the proxy's own certs directory in a text shared by several proxies. Every
# sidecar of one service has the same config but for that directory (the templates use
# nothing else of the proxy but its ports): 200 sidecars of 20 services are 20 renders.
CERTS = "@CERTS@"


@functools.lru_cache(maxsize=128)
def _text(role: str, ctx_json: str) -> str:
    ctx = json.loads(ctx_json)
    ctx["p"] = types.SimpleNamespace(**ctx["p"])
    text = _env().get_template(f"{role}.json.j2").render(**ctx)
    json.loads(text)  # a template bug shows here (JSON: parsed whole, in C, in a millisecond)
    return text


def render(plan: ClusterPlan, topo: MeshTopology, proxy: Proxy, certs: str, redirect: str = "ebpf",
           wasm: dict | None = None) -> str:
    """The proxy's Envoy config as JSON text (checked to parse, once per distinct text). JSON,
    not YAML: Envoy parses it with less CPU (~20 ms of the ~150 a start takes with 20
    services), and a check here costs a millisecond."""
    ctx = context(plan, topo, proxy, CERTS, redirect, wasm)
    ctx["p"] = {"admin_port": proxy.admin_port, "outbound_port": proxy.outbound_port,
                "inbound_port": proxy.inbound_port}
    return _text(proxy.role, json.dumps(ctx, sort_keys=True)).replace(CERTS, certs)
