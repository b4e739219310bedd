"""The cluster plan: every name and address of a run, derived from the spec and the run id
alone. Pure: building, status, teardown and clean-up all read the same plan, so nothing
needs to be remembered that can be derived.

Addressing (RFC 2544 benchmarking range, never routed off the machine):
  fabric   198.18.0.0/24     node i has 198.18.0.(i+1) on the fabric bridge (the ambient
                             proxy node, when there is one, comes after the spec's nodes)
  services 198.18.128.0/17   service k has the virtual IP 198.18.128.0 + k + 1
  pods     198.19.0.0/16     node i owns 198.19.(i+1).0/24, gateway .1, pods from .2
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .. import naming
from ..spec import PROXY_NODE, ClusterSpec

CLUSTER_NET = ipaddress.ip_network("198.18.0.0/15")
FABRIC_NET = ipaddress.ip_network("198.18.0.0/24")
FIRST_HOST = 200  # extra hosts on the fabric (attackers, load generators) from 198.18.0.200
SERVICE_NET = ipaddress.ip_network("198.18.128.0/17")
POD_NET = ipaddress.ip_network("198.19.0.0/16")
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

    def node(self, name: str) -> NodePlan:
        return _find(self.nodes, name, "node")

    def pod(self, name: str) -> PodPlan:
        return _find(self.pods, name, "pod")

    def service(self, name: str) -> ServicePlan:
        return _find(self.services, name, "service")

    def pods_on(self, node: str) -> list[PodPlan]:
        return [p for p in self.pods if p.node == node]

    def namespaces(self) -> list[str]:
        """Every namespace of the run, pods first (the order teardown uses)."""
        return [p.netns for p in self.pods] + [n.netns for n in self.nodes] + [self.fabric_netns]


def _find(items, name, what):
    for item in items:
        if item.name == name:
            return item
    known = ", ".join(i.name for i in items)
    raise KeyError(f"no {what} named {name!r} (known: {known})")


def make_plan(spec: ClusterSpec, run_id: str, proxy_node: bool = False) -> ClusterPlan:
    """`proxy_node` adds the ambient architecture's dedicated node for L7 proxies (no pods)."""
    naming.check_run_id(run_id)
    nodes = []
    for i, name in enumerate(spec.nodes + ((PROXY_NODE,) if proxy_node else ())):
        subnet = ipaddress.ip_network(f"{POD_NET.network_address + ((i + 1) << 8)}/24")
        nodes.append(NodePlan(
            name=name, index=i, netns=naming.node_netns(run_id, name),
            fabric_ip=str(FABRIC_NET.network_address + i + 1),
            fabric_if=naming.ifname(naming.NODE_IF_PREFIX, name),
            pod_cidr=str(subnet), gateway=str(subnet.network_address + 1),
        ))
    by_node = {n.name: n for n in nodes}
    next_host = {n.name: 2 for n in nodes}
    pods = []
    cg = naming.run_cgroup(run_id)
    for p in spec.pods:
        node = by_node[p.node]
        ip = ipaddress.ip_network(node.pod_cidr).network_address + next_host[p.node]
        next_host[p.node] += 1
        pods.append(PodPlan(
            name=p.name, service=p.service, service_account=p.service_account, node=p.node,
            ip=str(ip), port=spec.service(p.service).port, netns=naming.pod_netns(run_id, p.name),
            host_if=naming.ifname(naming.POD_IF_PREFIX, p.name), cgroup=f"{cg}/pod-{p.name}",
        ))
    services = tuple(
        ServicePlan(s.name, str(SERVICE_NET.network_address + k + 1), s.port, s.service_account,
                    tuple(p.name for p in pods if p.service == s.name))
        for k, s in enumerate(spec.services)
    )
    return ClusterPlan(run_id, spec, naming.fabric_netns(run_id), cg, tuple(nodes), tuple(pods), services)
