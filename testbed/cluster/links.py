"""Links, addresses and routes of the cluster, like a host-gateway CNI.

  fabric ns:  br0 ── n-<node> ┄┄ eth0 (node ns, fabric IP)
  node ns:    br0 (gateway of the node's pod /24) ── p-<pod> ┄┄ eth0 (pod ns, pod IP/32)

Pods hold a /32 and reach everything through their node's gateway, so every packet a pod
sends is routed by its node (where service translation, and later node proxies, sit), even
to a pod on the same node. The pod ports of a node's bridge are isolated from each other
(bridge port isolation): a pod that routes to a neighbour on-link (CAP_NET_ADMIN in its own
namespace is enough) reaches nobody, instead of reaching it over the bridge around the
node's routing, where node proxies capture inbound traffic (docs/mesh.md, "Bypass").
Nodes route each other's pod subnets over the fabric. No namespace has a default route:
pods route only the testbed's 198.18.0.0/15; the root namespace is not touched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import netns, rtnl
from .plan import BRIDGE, CLUSTER_NET, FABRIC_NET, NODE_IF, ClusterPlan, NodePlan, PodPlan

if TYPE_CHECKING:
    from pyroute2 import IPRoute

NODE_SYSCTLS = {
    "net.ipv4.ip_forward": 1,
    # pods on one bridge talk through the gateway on purpose: no redirects to shortcut it
    "net.ipv4.conf.all.send_redirects": 0,
    "net.ipv4.conf.default.send_redirects": 0,
    "net.ipv6.conf.all.disable_ipv6": 1,
    "net.ipv6.conf.default.disable_ipv6": 1,
    # bridged frames skip iptables: service translation happens where pods' packets are
    # routed, so a pod calling its own service (hairpin) works like any other call
    "net.bridge.bridge-nf-call-iptables": 0,
}
FABRIC_SYSCTLS = {"net.bridge.bridge-nf-call-iptables": 0, "net.ipv6.conf.all.disable_ipv6": 1}
POD_SYSCTLS = {
    "net.ipv4.conf.all.accept_redirects": 0,
    "net.ipv6.conf.all.disable_ipv6": 1,
    "net.ipv6.conf.default.disable_ipv6": 1,
}


@contextlib.contextmanager
def netlink(ns_name: str) -> Iterator[IPRoute]:
    """A netlink socket bound to namespace `ns_name` (opened from inside it; no helper process).
    pyroute2 is imported here, not with the module: it takes ~0.2 s, and commands that read a
    run (matrix, status) never need it."""
    from pyroute2 import IPRoute

    with netns.entered(ns_name):
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


LOOPBACK_INDEX = 1  # lo is the first interface of every namespace


def _cidr(cidr: str) -> tuple[str, int]:
    net = ipaddress.ip_network(cidr)
    return str(net.network_address), net.prefixlen


def build_fabric(plan: ClusterPlan) -> None:
    """The fabric's bridge, and one veth per node on it (the node's end: NODE_IF)."""
    fds = [os.open(netns.path(node.netns), os.O_RDONLY) for node in plan.nodes]
    try:
        with rtnl.Rtnl(plan.fabric_netns) as nl:
            nl.batch([rtnl.link_up(LOOPBACK_INDEX), rtnl.bridge_add(BRIDGE)])
            br = nl.link_index(BRIDGE)
            nl.batch([rtnl.veth_add(node.fabric_if, NODE_IF, fd, br) for node, fd in zip(plan.nodes, fds, strict=True)])
    finally:
        for fd in fds:
            os.close(fd)


def build_node(plan: ClusterPlan, node: NodePlan) -> None:
    """The node's fabric address and routes, its pod bridge, and one veth per pod."""
    pods = plan.pods_on(node.name)
    fds = [os.open(netns.path(pod.netns), os.O_RDONLY) for pod in pods]
    try:
        with rtnl.Rtnl(node.netns) as nl:
            eth = nl.link_index(NODE_IF)
            nl.batch([rtnl.link_up(LOOPBACK_INDEX), rtnl.link_up(eth),
                      rtnl.addr_add(eth, node.fabric_ip, FABRIC_NET.prefixlen), rtnl.bridge_add(BRIDGE)])
            br = nl.link_index(BRIDGE)
            nl.batch([rtnl.addr_add(br, node.gateway, 24)] +
                     [rtnl.route_add(*_cidr(other.pod_cidr), gateway=other.fabric_ip)
                      for other in plan.nodes if other.name != node.name])
            # one veth per pod, created on the bridge and up: one batch
            nl.batch([rtnl.veth_add(pod.host_if, NODE_IF, fd, br) for pod, fd in zip(pods, fds, strict=True)])
            # only the gateway, never a neighbour, over the bridge
            nl.batch([rtnl.bridge_port_isolated(pod.host_if) for pod in pods])
    finally:
        for fd in fds:
            os.close(fd)


def build_pod(node: NodePlan, pod: PodPlan) -> None:
    """lo and eth0 up, the pod's /32, its gateway on the link, the testbed's range through it:
    one batch of requests (rtnl.py), hundreds of pods in a build."""
    with rtnl.Rtnl(pod.netns) as nl:
        eth = nl.link_index(NODE_IF)
        nl.batch([rtnl.link_up(LOOPBACK_INDEX), rtnl.link_up(eth), rtnl.addr_add(eth, pod.ip, 32),
                  rtnl.route_add(node.gateway, 32, oif=eth),
                  # only the testbed's range goes to the node; anything else has no route at all
                  rtnl.route_add(str(CLUSTER_NET.network_address), CLUSTER_NET.prefixlen, gateway=node.gateway)])


def build_host(plan: ClusterPlan, netns_name: str, fabric_if: str, ip: str) -> None:
    """An extra host on the fabric: one veth to the fabric bridge, routes to every node's pods
    through that node (and nothing else)."""
    fd = os.open(netns.path(netns_name), os.O_RDONLY)
    try:
        with rtnl.Rtnl(plan.fabric_netns) as nl:
            nl.batch([rtnl.veth_add(fabric_if, NODE_IF, fd, nl.link_index(BRIDGE))])
    finally:
        os.close(fd)
    with rtnl.Rtnl(netns_name) as nl:
        eth = nl.link_index(NODE_IF)
        nl.batch([rtnl.link_up(LOOPBACK_INDEX), rtnl.link_up(eth), rtnl.addr_add(eth, ip, FABRIC_NET.prefixlen)] +
                 [rtnl.route_add(*_cidr(node.pod_cidr), gateway=node.fabric_ip) for node in plan.nodes])
