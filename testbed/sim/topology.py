"""The proxies of each architecture in a simulated cluster: the same names, roles, pods
served and keys held as `mesh.topology.make_topology` gives a real run (the unit tests hold
them equal), without the port and uid plan of one machine, and indexed, so that a cluster
of 15,000 pods gets its proxies in a fraction of a second.

What a request crosses (`path`) follows `mesh.topology.path`: the proxy serving the source
pod, in ambient and ztunnel the destination account's waypoint (unless the service skips
it), then the proxy serving the destination pod. Here the path is per destination pod,
since a service's replicas may sit behind different proxies.

Waypoints hold their own identity (`waypoint-<sa>`), not their account's: that is what the
L4 proxies behind them admit, and what a stolen waypoint's keys open (`reaches`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..mesh.topology import has_waypoints, waypoint_identity
from ..spec import PROXY_NODE
from .placement import SimCluster


@dataclass(frozen=True, slots=True)
class SimProxy:
    name: str
    role: str  # sidecar | node | node-sa | micro | ztunnel | l7 (a waypoint)
    node: str
    serves: tuple[str, ...]
    identities: tuple[str, ...]
    index: int
    account: str | None = None  # a waypoint: the service account whose services it fronts


class SimTopology:
    def __init__(self, cluster: SimCluster, arch: str):
        self.arch, self.cluster = arch, cluster
        self.proxies: list[SimProxy] = []
        self.serving: dict[str, int] = {}  # pod -> index of the proxy carrying its traffic
        self.l7: dict[str, int] = {}  # service account -> index of its waypoint
        self._build()
        self.by_name = {p.name: p for p in self.proxies}

    def _add(self, name, role, node, serves, identities, account=None) -> int:
        self.proxies.append(SimProxy(name, role, node, tuple(serves), tuple(identities), len(self.proxies), account))
        return len(self.proxies) - 1

    def _per_node(self, role: str) -> None:
        """One proxy per node with pods (node, ztunnel), holding every account there."""
        for node in self.cluster.nodes:
            pods = self.cluster.pods_by_node[node]
            if pods:
                k = self._add(f"{role}-{node}", role, node, [p.name for p in pods],
                              sorted({p.service_account for p in pods}))
                for p in pods:
                    self.serving[p.name] = k

    def _build(self) -> None:
        c, arch = self.cluster, self.arch
        if arch in ("sidecar", "ambient"):
            role = "sidecar" if arch == "sidecar" else "micro"
            for pod in c.pods:
                self.serving[pod.name] = self._add(f"{role}-{pod.name}", role, pod.node, (pod.name,),
                                                   (pod.service_account,))
        elif arch in ("node", "ztunnel"):
            self._per_node(arch)
        elif arch == "node-sa":
            for node in c.nodes:
                pods = c.pods_by_node[node]
                for sa in sorted({p.service_account for p in pods}):
                    mine = [p.name for p in pods if p.service_account == sa]
                    k = self._add(f"node-{node}.{sa}", "node-sa", node, mine, (sa,))
                    for name in mine:
                        self.serving[name] = k
        if has_waypoints(arch):
            with_l7 = sorted({s.service_account for s in c.spec.services if s.l7})
            by_account: dict[str, list[str]] = {sa: [] for sa in with_l7}
            for p in c.pods:
                if p.service_account in by_account:
                    by_account[p.service_account].append(p.name)
            for sa in with_l7:
                self.l7[sa] = self._add(f"l7-{sa}", "l7", PROXY_NODE, by_account[sa], (waypoint_identity(sa),), sa)

    def serving_proxy(self, pod: str) -> SimProxy | None:
        k = self.serving.get(pod)
        return None if k is None else self.proxies[k]

    def l7_for(self, service: str) -> SimProxy | None:
        """The waypoint a call to `service` crosses (None when it skips one, or the
        architecture has none)."""
        svc = self.cluster.services[service]
        k = self.l7.get(svc.service_account) if svc.l7 else None
        return None if k is None else self.proxies[k]

    def path(self, src_pod: str, dst_pod: str, dst_service: str) -> list[int]:
        """The proxies (indices) a request from `src_pod` to `dst_pod` of `dst_service`
        crosses, in order; a shared proxy crossed twice appears twice."""
        out = []
        if src_pod in self.serving:
            out.append(self.serving[src_pod])
        l7 = self.l7_for(dst_service)
        if l7 is not None:
            out.append(l7.index)
        if dst_pod in self.serving:
            out.append(self.serving[dst_pod])
        return out

    def resolve(self, target, pods: list[str]) -> list[SimProxy]:
        """The proxies a fault on these pods touches (chaos.base.resolve): the ones serving
        them (`proxy: l4` or none), or with `proxy: l7` their accounts' waypoints; each
        once, in order."""
        out: dict[str, SimProxy] = {}
        for name in pods:
            if getattr(target, "proxy", None) == "l7":
                proxy = self.l7_for(self.cluster.pod_by_name[name].service)
            else:
                proxy = self.serving_proxy(name)
            if proxy is not None:
                out[proxy.name] = proxy
        return list(out.values())

    def reaches(self, identity: str, service: str) -> bool:
        """Whether a holder of `identity` gets an answer from `service` by some door
        (mesh/entry.doors): through the front door when `calls` lets the identity's account
        call it; around a waypoint, straight to a pod's L4 proxy, only as that waypoint,
        whose L4 proxies admit nobody else."""
        c = self.cluster
        if identity in {c.services[x].service_account for x in c.callers_of[service]}:
            return True
        l7 = self.l7_for(service)
        return l7 is not None and identity == l7.identities[0]
