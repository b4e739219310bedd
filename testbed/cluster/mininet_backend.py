"""The Mininet backend: the same cluster as the namespace backend, built with Mininet's Python
API (`testbed up SPEC --backend mininet`).

  Mininet node        what it is                          named namespace
  host <node>         a node: eth0 on the fabric, br0     tb-<run>-n-<node>
  host <pod>          a pod: eth0 to its node             tb-<run>-p-<pod>
  switch br_fabric    the fabric's bridge br0             tb-<run>-fabric
  switch br_<node>    the node's pod bridge br0           the node's (shared with host <node>)

Links are Mininet veth links with the plan's interface names (`n-<node>`, `p-<pod>`, `eth0`),
addresses and routes are the plan's; switch names carry an underscore, which no spec name can,
so they never collide with a node or a pod. Only the building differs: the workload agents,
`exec`, `call`, `add_host` and the teardown (a sweep by tag) are the namespace backend's,
since everything they touch is named the same. The Mininet shells end when the build does;
`testbed cli` (mininet_cli.py) re-attaches Mininet to the running cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import naming
from ..errors import TestbedError
from . import cgroups, links, netns
from .namespaces import NamespaceCluster, Progress, _quiet
from .plan import BRIDGE, CLUSTER_NET, FABRIC_NET, NODE_IF, ClusterPlan

FABRIC_SWITCH = "br_fabric"


def bridge_name(node: str) -> str:
    return f"br_{node}"


@dataclass
class Nodes:
    """The Mininet nodes of a plan, by the plan's names."""

    fabric: object
    hosts: dict = field(default_factory=dict)  # node or pod name -> TestbedHost
    bridges: dict = field(default_factory=dict)  # node name -> its pod bridge


def add_nodes(net, plan: ClusterPlan, create: bool) -> Nodes:
    """Hosts and switches for the plan's fabric, nodes and pods: their namespaces created and
    named (`create`), or entered (a running cluster). A new namespace gets its sysctls before
    any link exists, as on the namespace backend."""
    from .mininet_nodes import Bridge, TestbedHost

    run_id = plan.run_id
    shells = naming.shells_cgroup(run_id)
    fabric = net.addSwitch(FABRIC_SWITCH, cls=Bridge, dpid="1", netns_name=plan.fabric_netns, cgroup=shells,
                           run_id=run_id, create=create)
    if create:
        netns.sysctl(plan.fabric_netns, links.FABRIC_SYSCTLS)
    nodes = Nodes(fabric)
    for node in plan.nodes:
        nodes.hosts[node.name] = net.addHost(node.name, cls=TestbedHost, netns_name=node.netns, cgroup=shells,
                                             run_id=run_id, create=create)
        if create:
            netns.sysctl(node.netns, links.NODE_SYSCTLS)
        nodes.bridges[node.name] = net.addSwitch(bridge_name(node.name), cls=Bridge, dpid=f"{node.index + 2:x}",
                                                 netns_name=node.netns, cgroup=shells, run_id=run_id, create=False)
    for pod in plan.pods:
        nodes.hosts[pod.name] = net.addHost(pod.name, cls=TestbedHost, netns_name=pod.netns, cgroup=pod.cgroup,
                                            run_id=run_id, create=create)
        if create:
            netns.sysctl(pod.netns, links.POD_SYSCTLS)
    return nodes


def wire(net, plan: ClusterPlan, nodes: Nodes, create: bool) -> None:
    """The links, bridges, addresses and routes of links.py, made through Mininet (`create`),
    or only described to it (a running cluster: what Mininet's `net` and `pingall` need)."""
    from mininet.link import Intf

    from .mininet_nodes import ExistingIntf, ExistingLink, checked

    known = {} if create else {"cls": ExistingLink, "intf": ExistingIntf}

    def address(intf, ip: str, prefix: int) -> None:
        if create:
            checked(intf.node, f"ip addr add {ip}/{prefix} dev {intf.name}")
        intf.ip, intf.prefixLen = ip, prefix

    for node in plan.nodes:
        host = nodes.hosts[node.name]
        link = net.addLink(nodes.fabric, host, intfName1=node.fabric_if, intfName2=NODE_IF, **known)
        address(link.intf2, node.fabric_ip, FABRIC_NET.prefixlen)
    for pod in plan.pods:
        link = net.addLink(nodes.bridges[pod.node], nodes.hosts[pod.name], intfName1=pod.host_if, intfName2=NODE_IF,
                           **known)
        address(link.intf2, pod.ip, 32)
    if create:
        for switch in [nodes.fabric, *nodes.bridges.values()]:
            switch.start([])
    for node in plan.nodes:  # the node's gateway is its pod bridge, in its namespace
        host = nodes.hosts[node.name]
        gateway = (Intf if create else ExistingIntf)(BRIDGE, node=host, moveIntfFn=lambda *a, **k: None)
        address(gateway, node.gateway, 24)
    if not create:
        return
    for name in [*(n.name for n in plan.nodes), *(p.name for p in plan.pods)]:
        checked(nodes.hosts[name], "ip link set lo up")
    checked(nodes.fabric, "ip link set lo up")
    for node in plan.nodes:
        for other in plan.nodes:
            if other.name != node.name:
                checked(nodes.hosts[node.name], f"ip route add {other.pod_cidr} via {other.fabric_ip}")
    for pod in plan.pods:
        gateway = plan.node(pod.node).gateway
        checked(nodes.hosts[pod.name], f"ip route add {gateway}/32 dev {NODE_IF} scope link && "
                                       f"ip route add {CLUSTER_NET} via {gateway}")
        # as links.py: only the gateway, never a neighbour, over the node's bridge
        checked(nodes.hosts[pod.node], f"ip link set dev {pod.host_if} type bridge_slave isolated on")


def quiet_mininet() -> None:
    """The library never prints: Mininet's own log would (its CLI turns it back on)."""
    from mininet.log import setLogLevel

    setLogLevel("critical")


class MininetCluster(NamespaceCluster):
    """The cluster stage on the Mininet backend: `build()` makes the network with Mininet,
    then starts the agents as the namespace backend does; `teardown()` and `sweep()` are its
    (everything is named and tagged the same)."""

    backend = "mininet"

    def build_network(self, progress: Progress = _quiet) -> dict[str, float]:
        from .mininet_nodes import TestbedNet

        plan, t = self.plan, {}
        t0 = time.monotonic()
        quiet_mininet()
        cgroups.create(naming.shells_cgroup(plan.run_id))
        net = TestbedNet()
        try:
            progress(f"Mininet: {len(plan.nodes) + len(plan.pods)} hosts, {len(plan.nodes) + 1} Linux-bridge "
                     "switches")
            nodes = add_nodes(net, plan, create=True)
            t["namespaces"] = time.monotonic() - t0
            progress("Mininet: links, addresses and routes")
            wire(net, plan, nodes, create=True)
            t["links"] = time.monotonic() - t0 - t["namespaces"]
        except TestbedError:
            raise
        except Exception as exc:  # Mininet raises plain Exceptions (a veth pair it could not make)
            raise TestbedError(f"Mininet could not build the cluster: {exc}") from exc
        finally:
            net.stop_shells()  # the cluster outlives them: its namespaces are named
        return t
