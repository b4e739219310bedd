"""Where the proxies sit in each architecture, whom they serve and which keys they hold.
Pure: derived from the cluster plan and the architecture alone.

| arch    | proxies                              | keys each proxy holds                     |
|---------|--------------------------------------|-------------------------------------------|
| none    | none                                 | none                                      |
| sidecar | one per pod, in the pod's netns      | that pod's service account                |
| node    | one per node, in the node's netns    | every service account with a pod there    |
| node-sa | one per (node, SA with pods there)   | that one service account                  |
| ambient | an L4 micro-proxy per pod, plus one  | micro: its pod's; waypoint: its own       |
|         | waypoint (L7) per SA on the          | identity (waypoint-<sa>), not the SA's    |
|         | waypoints' node                      |                                           |
| ztunnel | one L4 proxy per node, plus the      | ztunnel: every SA with a pod on the node; |
|         | waypoints of ambient                 | waypoint: its own identity                |
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import naming
from ..addressing import (
    ADMIN_PORT,
    HBONE_PORT,
    INBOUND_PORT,
    L7_ADMIN_BASE,
    L7_PORT_BASE,
    MAX_ACCOUNTS_PER_NODE,
    MAX_L7_ACCOUNTS,
    MAX_PROXIES,
    NODE_SA_PORT_BASE,
    NODE_SA_PORT_STEP,
    OUTBOUND_PORT,
    WAYPOINT_HBONE_BASE,
)
from ..cluster.plan import ClusterPlan
from ..spec import PROXY_NODE, WAYPOINT_PREFIX, ClusterSpec

ARCHITECTURES = ("none", "sidecar", "node", "node-sa", "ambient", "ztunnel")
# L4 proxies (mTLS, no HTTP) in front of every pod, and an L7 waypoint per service account
# on the waypoints' node: the architectures where a fault target may pick one of TARGET_PROXIES
SPLIT_ARCHITECTURES = ("ambient", "ztunnel")
# `proxy:` of a fault target: the L4 proxy serving the pod (ambient: its micro-proxy; ztunnel:
# its node's ztunnel, the default) or the waypoint of the pod's service account
TARGET_PROXIES = ("l4", "l7")
ROLES = ("sidecar", "node", "node-sa", "micro", "ztunnel", "l7")  # a proxy's role (Proxy.role)

__all__ = ["ARCHITECTURES", "SPLIT_ARCHITECTURES", "TARGET_PROXIES", "ADMIN_PORT", "OUTBOUND_PORT", "INBOUND_PORT",
           "HBONE_PORT", "FINAL_HOP_MARK", "MeshTopology", "Proxy", "make_topology", "limits", "l7_port", "path",
           "has_waypoints", "waypoint_identity", "crossed"]
FINAL_HOP_MARK = 1337  # SO_MARK of a node proxy's own connections to its pods: never captured


def has_waypoints(arch: str) -> bool:
    """Whether `arch` places waypoints, and so the run gets the waypoints' node."""
    return arch in SPLIT_ARCHITECTURES


def waypoint_identity(service_account: str) -> str:
    """The identity a waypoint presents (and holds the key of): its own, not the account's,
    so that L4 proxies can admit L7-bound traffic from the waypoint alone."""
    return f"{WAYPOINT_PREFIX}{service_account}"


@dataclass(frozen=True)
class Proxy:
    name: str
    role: str  # sidecar | node | node-sa | micro | ztunnel | l7 (a waypoint)
    netns: str
    node: str
    serves: tuple[str, ...]  # pods whose traffic it carries
    identities: tuple[str, ...]  # identities whose private keys it holds (service accounts, waypoint-<sa>)
    index: int
    admin_port: int
    outbound_port: int | None
    inbound_port: int | None
    cgroup: str
    uid: int  # also its Envoy --base-id
    plaintext_hop: str  # where app traffic is still plain: "loopback", "pod-veth" or "none"
    hbone_port: int | None = None  # where it terminates HBONE tunnels (`mesh.tunnel: hbone`)
    account: str | None = None  # a waypoint: the service account whose services it fronts

    @property
    def base_id(self) -> int:
        return self.uid


@dataclass(frozen=True)
class MeshTopology:
    arch: str
    proxies: tuple[Proxy, ...]

    def proxy(self, name: str) -> Proxy:
        for p in self.proxies:
            if p.name == name:
                return p
        raise KeyError(f"no proxy named {name!r}")

    def serving(self, pod: str) -> Proxy | None:
        """The proxy that carries `pod`'s own traffic (its sidecar, node proxy, micro-proxy)."""
        for p in self.proxies:
            if p.role != "l7" and pod in p.serves:
                return p
        return None

    def l7_for(self, service_account: str) -> Proxy | None:
        """The waypoint of a service account (None when the architecture has none)."""
        for p in self.proxies:
            if p.role == "l7" and p.account == service_account:
                return p
        return None

    def waypoint_of(self, plan: ClusterPlan, service: str) -> Proxy | None:
        """The waypoint calls to `service` go through: its account's, unless the service has
        `l7: false` (or the architecture has no waypoints)."""
        if not plan.spec.service(service).l7:
            return None
        return self.l7_for(plan.service(service).service_account)

    def identities(self) -> list[str]:
        """Every identity some proxy holds: the SVIDs the run must issue."""
        return sorted({sa for p in self.proxies for sa in p.identities})


def make_topology(plan: ClusterPlan, arch: str) -> MeshTopology:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}")
    run = plan.run_id
    out: list[Proxy] = []

    hbone = plan.spec.mesh.tunnel == "hbone"

    def add(name, role, netns, node, serves, identities, admin, outbound, inbound, plaintext, hbone_port=None,
            account=None):
        out.append(Proxy(name, role, netns, node, tuple(serves), tuple(identities), len(out), admin,
                         outbound, inbound, naming.proxy_cgroup(run, name, captured=role != "l7"),
                         naming.proxy_id(plan.id_block, len(out)),
                         plaintext, hbone_port, account))

    if arch in ("sidecar", "ambient"):
        role = "sidecar" if arch == "sidecar" else "micro"
        for pod in plan.pods:
            add(f"{role}-{pod.name}", role, pod.netns, pod.node, [pod.name], [pod.service_account],
                ADMIN_PORT, OUTBOUND_PORT, INBOUND_PORT, "loopback", HBONE_PORT if role == "micro" and hbone else None)
    elif arch == "ztunnel":
        for node in plan.nodes:
            pods = plan.pods_on(node.name)
            if pods:
                add(f"ztunnel-{node.name}", "ztunnel", node.netns, node.name, [p.name for p in pods],
                    sorted({p.service_account for p in pods}), ADMIN_PORT, OUTBOUND_PORT, INBOUND_PORT,
                    "pod-veth", HBONE_PORT if hbone else None)
    elif arch == "node":
        for node in plan.nodes:
            pods = plan.pods_on(node.name)
            if pods:
                add(f"node-{node.name}", "node", node.netns, node.name, [p.name for p in pods],
                    sorted({p.service_account for p in pods}), ADMIN_PORT, OUTBOUND_PORT, INBOUND_PORT,
                    "pod-veth")
    elif arch == "node-sa":
        for node in plan.nodes:
            for k, sa in enumerate(sorted({p.service_account for p in plan.pods_on(node.name)})):
                base = NODE_SA_PORT_BASE + NODE_SA_PORT_STEP * k
                pods = [p.name for p in plan.pods_on(node.name) if p.service_account == sa]
                add(f"node-{node.name}.{sa}", "node-sa", node.netns, node.name, pods, [sa],
                    base, base + 1, base + 6, "pod-veth")
    if has_waypoints(arch):
        proxy_node = plan.node(PROXY_NODE)
        with_l7 = sorted({s.service_account for s in plan.spec.services if s.l7})
        for k, sa in enumerate(with_l7):
            pods = [p.name for p in plan.pods if p.service_account == sa]
            add(f"l7-{sa}", "l7", proxy_node.netns, PROXY_NODE, pods, [waypoint_identity(sa)], L7_ADMIN_BASE + k,
                None, None, "none", WAYPOINT_HBONE_BASE + k if hbone else None, sa)
    return MeshTopology(arch, tuple(out))


def limits(spec: ClusterSpec, arch: str) -> list[str]:
    """Why this cluster cannot be built in this architecture (empty when it can): each
    proxy needs its own uid and ports from the port plan (addressing.py). Pure, so a
    cluster over a limit is refused before anything exists."""
    problems = []
    accounts_on = {n: sorted({p.service_account for p in spec.pods_on(n)}) for n in spec.nodes}
    with_l7 = {s.service_account for s in spec.services if s.l7}
    nodes_with_pods = sum(1 for a in accounts_on.values() if a)
    count = {"none": 0, "sidecar": len(spec.pods), "node": nodes_with_pods,
             "node-sa": sum(len(a) for a in accounts_on.values()),
             "ambient": len(spec.pods) + len(with_l7), "ztunnel": nodes_with_pods + len(with_l7)}.get(arch, 0)
    if count > MAX_PROXIES:
        problems.append(f"{arch} would place {count} proxies (at most {MAX_PROXIES} per run)")
    if arch == "node-sa":
        for node, accounts in accounts_on.items():
            if len(accounts) > MAX_ACCOUNTS_PER_NODE:
                problems.append(f"node-sa would place {len(accounts)} proxies on node {node} (one per service "
                                f"account; at most {MAX_ACCOUNTS_PER_NODE} fit the port plan)")
    if has_waypoints(arch) and len(with_l7) > MAX_L7_ACCOUNTS:
        problems.append(f"{arch} would place {len(with_l7)} waypoints on the waypoints' node (one per service "
                        f"account with l7 services; at most {MAX_L7_ACCOUNTS} fit the port plan)")
    return problems


def l7_port(plan: ClusterPlan, service: str) -> int:
    return L7_PORT_BASE + [s.name for s in plan.services].index(service)


def path(plan: ClusterPlan, topo: MeshTopology, src_pod: str, dst_service: str) -> list[str]:
    """The proxies (by role) a request from `src_pod` to `dst_service` crosses, in order:
    the one serving the source, in ambient and ztunnel the destination account's waypoint
    (unless the service skips it), and the one serving the destination pod. Two passes
    through one shared proxy (same node) count twice: they are two listeners' work."""
    dst_pod = plan.service(dst_service).pods[0]
    out = []
    src = topo.serving(src_pod)
    if src is not None:
        out.append(src.role)
    l7 = topo.waypoint_of(plan, dst_service)
    if l7 is not None:
        out.append(l7.role)
    dst = topo.serving(dst_pod)
    if dst is not None:
        out.append(dst.role)
    return out


def crossed(plan: ClusterPlan, topo: MeshTopology, src_pod: str, dst_service: str) -> set[str]:
    """The proxies (by name) a flow's requests may cross: the one serving the source, the L7
    proxy of the destination's account where the flow goes through one, and the one serving
    each pod of the destination (requests are balanced over them)."""
    out = set()
    src = topo.serving(src_pod)
    if src is not None:
        out.add(src.name)
    waypoint = topo.waypoint_of(plan, dst_service)
    if waypoint is not None:
        out.add(waypoint.name)
    for pod in plan.service(dst_service).pods:
        dst = topo.serving(pod)
        if dst is not None:
            out.add(dst.name)
    return out
