"""Capture with iptables REDIRECT, as Istio's init container does it, in the namespace
where the proxy sits:

- sidecar, micro (pod namespace): the app's connections to service VIPs go to the proxy's
  outbound port, except the proxy's own (matched by its uid); connections to the pod's own
  port go to its inbound port, so nobody reaches the app around the proxy.
- node, node-sa, ztunnel (node namespace): connections from a pod to a VIP go to the
  outbound port of the proxy serving that pod; connections to a local pod's port, from
  other nodes or from this node's proxies, go to the inbound port of the proxy serving it
  (and, behind a ztunnel, HBONE to the pod's port 15008 to the ztunnel's); the proxies' own
  plaintext last hop carries a mark and passes.
Envoy recovers the original destination with SO_ORIGINAL_DST (original_dst listener filter).
Service VIPs are translated by DNAT in the nodes, as kube-proxy does (cluster/services.py),
with or without a mesh. The rules live in the run's namespaces and go with them."""

from __future__ import annotations

import time

from ..cluster import procs, services
from ..cluster.plan import BRIDGE, SERVICE_NET, ClusterPlan
from ..errors import TestbedError
from ..mesh.topology import FINAL_HOP_MARK, MeshTopology
from ..state import Run

CHAINS = ("TB-MESH-OUT", "TB-MESH-IN", "TB-MESH-PRE")


def render(plan: ClusterPlan, topo: MeshTopology) -> dict[str, str]:
    """iptables-restore input (for --noflush) per namespace."""
    out: dict[str, list[str]] = {}
    for proxy in topo.proxies:
        if proxy.role in ("sidecar", "micro"):
            pod = plan.pod(proxy.serves[0])
            out[proxy.netns] = [
                ":TB-MESH-OUT - [0:0]", ":TB-MESH-IN - [0:0]",
                "-A OUTPUT -p tcp -j TB-MESH-OUT", "-A PREROUTING -p tcp -j TB-MESH-IN",
                # the pod calling itself (its sidecar dialling its own address) enters inbound too
                f"-A TB-MESH-OUT -d {pod.ip}/32 -p tcp --dport {pod.port} "
                f"-j REDIRECT --to-ports {proxy.inbound_port}",
                f"-A TB-MESH-OUT -m owner --uid-owner {proxy.uid} -j RETURN",
                f"-A TB-MESH-OUT -d {SERVICE_NET} -p tcp -j REDIRECT --to-ports {proxy.outbound_port}",
                f"-A TB-MESH-IN -d {pod.ip}/32 -p tcp --dport {pod.port} "
                f"-j REDIRECT --to-ports {proxy.inbound_port}",
            ]
        elif proxy.role in ("node", "node-sa", "ztunnel"):
            rules = out.setdefault(proxy.netns, [
                ":TB-MESH-PRE - [0:0]", ":TB-MESH-OUT - [0:0]",
                "-I PREROUTING 1 -p tcp -j TB-MESH-PRE", "-I OUTPUT 1 -p tcp -j TB-MESH-OUT",
                f"-A TB-MESH-OUT -m mark --mark {FINAL_HOP_MARK} -j RETURN",
            ])
            for name in proxy.serves:
                pod = plan.pod(name)
                rules += [
                    f"-A TB-MESH-PRE -i {BRIDGE} -s {pod.ip}/32 -d {SERVICE_NET} -p tcp "
                    f"-j REDIRECT --to-ports {proxy.outbound_port}",
                    f"-A TB-MESH-PRE -d {pod.ip}/32 -p tcp --dport {pod.port} "
                    f"-j REDIRECT --to-ports {proxy.inbound_port}",
                    f"-A TB-MESH-OUT -d {pod.ip}/32 -p tcp --dport {pod.port} "
                    f"-j REDIRECT --to-ports {proxy.inbound_port}",
                ]
                if proxy.role == "ztunnel" and proxy.hbone_port:
                    rules += [f"-A TB-MESH-{chain} -d {pod.ip}/32 -p tcp --dport {proxy.hbone_port} "
                              f"-j REDIRECT --to-ports {proxy.hbone_port}" for chain in ("PRE", "OUT")]
    return {ns: "\n".join(["*nat", *rules, "COMMIT", ""]) for ns, rules in out.items()}


def install(plan: ClusterPlan, topo: MeshTopology) -> None:
    for ns, text in render(plan, topo).items():
        r = procs.run(["iptables-restore", "--noflush", "-w", "5"], ns, input=text)
        if r.returncode != 0:
            raise TestbedError(f"iptables-restore in {ns} failed: {r.stderr.strip()}")


def holds_rules(plan: ClusterPlan, topo: MeshTopology, ns: str) -> bool:
    """Whether capture rules live in this namespace (a pod's own, for sidecar and micro)."""
    return ns in render(plan, topo)


def release(ns: str) -> None:
    """Remove the capture rules of one namespace, as a workload holding CAP_NET_ADMIN in it
    could (chaos: bypass)."""
    for args in (["-F"], ["-X"]):
        r = procs.run(["iptables", "-w", "5", "-t", "nat", *args], ns)
        if r.returncode != 0:
            raise TestbedError(f"iptables -t nat {args[0]} in {ns} failed: {r.stderr.strip()}")


def reinstall(plan: ClusterPlan, topo: MeshTopology, ns: str) -> None:
    r = procs.run(["iptables-restore", "--noflush", "-w", "5"], ns, input=render(plan, topo)[ns])
    if r.returncode != 0:
        raise TestbedError(f"iptables-restore in {ns} failed: {r.stderr.strip()}")


class IptablesRedirect:
    """The redirect stage with iptables: service DNAT in every node and, with a mesh, the
    capture rules. Teardown flushes them where the namespaces still exist (the namespaces'
    own teardown would take them anyway)."""

    name = "redirect"

    def __init__(self, plan: ClusterPlan, run: Run, mesh=None):
        self.plan, self.mesh = plan, mesh

    def build(self, progress=lambda msg: None) -> dict[str, float]:
        t0 = time.monotonic()
        progress("translating service addresses with iptables in the nodes")
        for node in self.plan.nodes:
            services.install(self.plan, node)
        if self.mesh is not None:
            progress("capturing app traffic with iptables")
            install(self.plan, self.mesh.topo)
        return {"redirect": time.monotonic() - t0}

    def teardown(self) -> list[str]:
        removed = []
        spaces = {n.netns for n in self.plan.nodes} | (
            {p.netns for p in self.mesh.topo.proxies} if self.mesh is not None else set())
        for ns in sorted(spaces):
            try:
                if procs.run(["iptables", "-w", "5", "-t", "nat", "-F"], ns).returncode == 0:
                    removed.append(f"iptables nat rules in {ns}")
            except FileNotFoundError:
                pass  # the namespace is gone, and its rules with it
        return removed

    @staticmethod
    def sweep(run_id: str | None) -> list[str]:
        return []  # the rules live only in the run's namespaces
