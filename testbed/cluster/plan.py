"""The cluster plan: every name and address of a run, derived from the spec and the run id
alone. Pure: building, status, teardown and clean-up all read the same plan, so nothing
needs to be remembered that can be derived.

Addresses come from the RFC 2544 benchmarking range, never routed off the machine; the
plan and its limits are in `addressing.py`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .. import naming
from ..addressing import CLUSTER_NET, FABRIC_NET, FIRST_HOST, POD_NET, SERVICE_NET, fabric_ip, pod_subnet, service_vip
from ..spec import PROXY_NODE, ClusterSpec

__all__ = ["CLUSTER_NET", "FABRIC_NET", "FIRST_HOST", "POD_NET", "SERVICE_NET", "ClusterPlan", "make_plan"]
NODE_IF = "eth0"  # a node's interface on the fabric, and a pod's interface to its node
BRIDGE = "br0"  # the fabric bridge (in the fabric namespace) and each node's pod bridge


@dataclass(frozen=True)
class NodePlan:
    name: str
    index: int
    netns: str
    fabric_ip: str
    fabric_if: str  # the node's port on the fabric bridge, in the fabric namespace
    pod_cidr: str
    gateway: str  # the node's address on its pod bridge


@dataclass(frozen=True)
class PodPlan:
    name: str
    service: str
    service_account: str
    node: str
    ip: str
    port: int
    netns: str
    host_if: str  # the node's end of the pod's veth
    cgroup: str  # relative to the cgroup2 mount


@dataclass(frozen=True)
class ServicePlan:
    name: str
    vip: str
    port: int
    service_account: str
    pods: tuple[str, ...]


@dataclass(frozen=True)
class ClusterPlan:
    run_id: str
    spec: ClusterSpec
    fabric_netns: str
    cgroup: str
    nodes: tuple[NodePlan, ...]
    pods: tuple[PodPlan, ...]
    services: tuple[ServicePlan, ...]
    id_block: int = 0  # the run's block of proxy uids / Envoy base ids (idblocks.py)

    def node(self, name: str) -> NodePlan:
        return _find(self._index["node"], self.nodes, name, "node")

    def pod(self, name: str) -> PodPlan:
        return _find(self._index["pod"], self.pods, name, "pod")

    def service(self, name: str) -> ServicePlan:
        return _find(self._index["service"], self.services, name, "service")

    @functools.cached_property
    def _index(self) -> dict[str, dict]:
        """Lookups by name in constant time: rendering 800 proxy configs asks for pods by
        name hundreds of thousands of times."""
        return {"node": {n.name: n for n in self.nodes}, "pod": {p.name: p for p in self.pods},
                "service": {s.name: s for s in self.services}}

    def pods_on(self, node: str) -> list[PodPlan]:
        return [p for p in self.pods if p.node == node]

    def namespaces(self) -> list[str]:
        """Every namespace of the run, pods first (the order teardown uses)."""
        return [p.netns for p in self.pods] + [n.netns for n in self.nodes] + [self.fabric_netns]


def _find(index, items, name, what):
    try:
        return index[name]
    except (KeyError, TypeError):
        known = ", ".join(i.name for i in items)
        raise KeyError(f"no {what} named {name!r} (known: {known})") from None


def make_plan(spec: ClusterSpec, run_id: str, proxy_node: bool = False, id_block: int = 0) -> ClusterPlan:
    """`proxy_node` adds the ambient architecture's dedicated node for L7 proxies (no pods);
    `id_block` is the block of proxy ids the run holds."""
    naming.check_run_id(run_id)
    nodes = []
    for i, name in enumerate(spec.nodes + ((PROXY_NODE,) if proxy_node else ())):
        subnet = pod_subnet(i)
        nodes.append(NodePlan(
            name=name, index=i, netns=naming.node_netns(run_id, name),
            fabric_ip=fabric_ip(i),
            fabric_if=naming.ifname(naming.NODE_IF_PREFIX, name),
            pod_cidr=str(subnet), gateway=str(subnet.network_address + 1),
        ))
    by_node = {n.name: n for n in nodes}
    next_host = {n.name: 2 for n in nodes}
    pods = []
    cg = naming.run_cgroup(run_id)
    for p in spec.pods:
        node = by_node[p.node]
        ip = pod_subnet(node.index).network_address + next_host[p.node]
        next_host[p.node] += 1
        pods.append(PodPlan(
            name=p.name, service=p.service, service_account=p.service_account, node=p.node,
            ip=str(ip), port=spec.service(p.service).port, netns=naming.pod_netns(run_id, p.name),
            host_if=naming.ifname(naming.POD_IF_PREFIX, p.name), cgroup=naming.pod_cgroup(run_id, p.name),
        ))
    services = tuple(
        ServicePlan(s.name, service_vip(k), s.port, s.service_account,
                    tuple(p.name for p in pods if p.service == s.name))
        for k, s in enumerate(spec.services)
    )
    return ClusterPlan(run_id, spec, naming.fabric_netns(run_id), cg, tuple(nodes), tuple(pods), services, id_block)
