"""Config size per proxy, counted as the renderer (mesh/render.py, mesh/split_configs.py and
envoy_configs/) would produce it and as Envoy's /config_dump shows it
(measure/cost.config_counts), without rendering: listeners, clusters, endpoints, routes,
secrets. The unit tests render real configs (every architecture, both tunnels, both scopes)
and count them, to hold these formulas to the templates.

- sidecar: an outbound listener (when the pod's service knows any service) and an inbound
  one; a cluster per known service and one for the app; endpoints: the known services'
  replicas plus the app's; routes: one per known service and one inbound.
- node, node-sa: an outbound listener (when any local account knows a service) and an
  inbound one; per local account, a cluster per service it knows, plus the final hop's
  (original destination, no endpoints); routes: per outbound chain and per local service.
- micro, ztunnel (the L4 proxies: one template, the ztunnel's chains per account of its
  node): an outbound listener (when any chain), an inbound one, and with `mesh.tunnel: hbone`
  the HBONE listener; a last-hop cluster (one endpoint) per pod served. Outbound clusters:
  with `tcp`, one per (account, known service), of one endpoint (its waypoint) or the
  service's replicas (`l7: false`); with `hbone`, one per (account, waypoint) of one endpoint,
  shared by every service behind that waypoint, and one per (account, service without a
  waypoint) of its replicas. Routes: with hbone, the CONNECT route of each pod's HBONE chain;
  none with tcp (nothing is HTTP).
- l7 (a waypoint, per account with `l7` services, holding its own identity; `mesh.scope`
  does not narrow it): with `tcp`, per service a listener, a cluster of its replicas and a
  route; with `hbone`, the HBONE listener, per service an internal listener, then
  `originate`; per service a cluster to its internal listener (one endpoint) and one over
  its replicas, plus the tunnel (original destination); routes: per service its CONNECT
  route and its HTTP route.
- secrets: the distinct certificates: one per identity the proxy holds.

"Known" is `mesh.scope`: every service (`all`) or those the proxy's workloads call (`calls`,
Istio's Sidecar resource)."""

from __future__ import annotations

from dataclasses import dataclass

from .placement import SimCluster
from .topology import SimProxy

COUNTS = ("listeners", "clusters", "endpoints", "routes", "secrets")


@dataclass(frozen=True)
class Known:
    """What a proxy serving some services' pods knows of the services they may call."""

    services: int  # services known
    replicas: int  # their replicas
    waypointed: int  # of them, behind a waypoint (`l7`: true)
    waypoints: int  # the distinct accounts of those: one waypoint each
    direct: int  # the others (`l7: false`): reached pod to pod
    direct_replicas: int


class ConfigModel:
    def __init__(self, cluster: SimCluster, scope: str | None = None, tunnel: str | None = None):
        self.cluster = cluster
        self.scope = scope or cluster.spec.mesh.scope
        self.hbone = (tunnel or cluster.spec.mesh.tunnel) == "hbone"
        self.replicas = {s: len(p) for s, p in cluster.pods_by_service.items()}
        self._known: dict[frozenset, Known] = {}
        self._all = self._summary(list(self.replicas))

    def _summary(self, services) -> Known:
        svc = self.cluster.services
        via = [s for s in services if svc[s].l7]
        direct = [s for s in services if not svc[s].l7]
        return Known(len(services), sum(self.replicas[s] for s in services), len(via),
                     len({svc[s].service_account for s in via}), len(direct), sum(self.replicas[s] for s in direct))

    def known(self, callers: frozenset[str]) -> Known:
        """What a proxy serving pods of `callers` (service names) knows."""
        if self.scope == "all":
            return self._all
        got = self._known.get(callers)
        if got is None:
            called = {t for s in callers for t in self.cluster.calls_from[s]}
            got = self._known[callers] = self._summary([s for s in self.replicas if s in called])
        return got

    def _by_account(self, proxy: SimProxy) -> dict[str, set[str]]:
        """The services of the pods a proxy serves, per account."""
        out: dict[str, set[str]] = {}
        for name in proxy.serves:
            p = self.cluster.pod_by_name[name]
            out.setdefault(p.service_account, set()).add(p.service)
        return out

    def counts(self, proxy: SimProxy) -> dict[str, int]:
        if proxy.role == "sidecar":
            k = self.known(frozenset((self.cluster.pod_by_name[proxy.serves[0]].service,)))
            return {"listeners": (k.services > 0) + 1, "clusters": k.services + 1, "endpoints": k.replicas + 1,
                    "routes": k.services + 1, "secrets": 1}
        if proxy.role in ("node", "node-sa"):
            by_account = self._by_account(proxy)
            known = [self.known(frozenset(s)) for s in by_account.values()]
            chains = sum(k.services for k in known)
            local = len(set().union(*by_account.values())) if by_account else 0
            return {"listeners": (chains > 0) + 1, "clusters": chains + 1, "endpoints": sum(k.replicas for k in known),
                    "routes": chains + local, "secrets": len(proxy.identities)}
        if proxy.role in ("micro", "ztunnel"):
            return self._l4(proxy)
        return self._waypoint(proxy)

    def _l4(self, proxy: SimProxy) -> dict[str, int]:
        known = [self.known(frozenset(s)) for s in self._by_account(proxy).values()]
        chains = sum(k.services for k in known)
        pods = len(proxy.serves)  # each pod: its last-hop cluster (one endpoint), and with hbone its CONNECT route
        if self.hbone:
            clusters = sum(k.waypoints + k.direct for k in known)
            endpoints = sum(k.waypoints + k.direct_replicas for k in known)
        else:
            clusters = chains
            endpoints = sum(k.waypointed + k.direct_replicas for k in known)
        return {"listeners": (chains > 0) + self.hbone + 1, "clusters": clusters + pods,
                "endpoints": endpoints + pods, "routes": pods if self.hbone else 0,
                "secrets": len(proxy.identities)}

    def _waypoint(self, proxy: SimProxy) -> dict[str, int]:
        mine = [s.name for s in self.cluster.spec.services if s.service_account == proxy.account and s.l7]
        n, replicas = len(mine), sum(self.replicas[s] for s in mine)
        if self.hbone:
            return {"listeners": n + 2, "clusters": 2 * n + 1, "endpoints": n + replicas, "routes": 2 * n,
                    "secrets": 1}
        return {"listeners": n, "clusters": n, "endpoints": replicas, "routes": n, "secrets": 1}
