"""Config size per proxy, counted as the renderer (mesh/render.py and envoy_configs/) would
produce it and as Envoy's /config_dump shows it (measure/cost.config_counts), without
rendering: listeners, clusters, endpoints, routes, secrets. The unit tests render real
configs for small clusters and count them, to hold these formulas to the templates.

- sidecar, micro: an outbound listener (when the pod's service knows any service) and an
  inbound one; a cluster per known service and one for the app; endpoints: the known
  services' replicas (a micro-proxy sends an L7 service's traffic to its one L7 proxy), plus
  the app's; routes: one per known service and one inbound (micro-proxies route nothing).
- node, node-sa: an outbound listener (when any local account knows a service) and an
  inbound one; per local account, a cluster per service it knows, plus the final hop's
  (original destination, no endpoints); routes: per outbound chain and per local service.
- l7: per service of its account with an L7 proxy, a listener, a cluster, a route.
- secrets: the distinct certificates: one per identity the proxy holds.

"Known" is `mesh.scope`: every service (`all`) or those the proxy's workloads call (`calls`,
Istio's Sidecar resource)."""

from __future__ import annotations

from .placement import SimCluster
from .topology import SimProxy

COUNTS = ("listeners", "clusters", "endpoints", "routes", "secrets")


class ConfigModel:
    def __init__(self, cluster: SimCluster, scope: str | None = None):
        self.cluster = cluster
        self.scope = scope or cluster.spec.mesh.scope
        self.replicas = {s: len(p) for s, p in cluster.pods_by_service.items()}
        self.total_replicas = sum(self.replicas.values())
        self.l7_endpoints_all = sum(1 if cluster.services[s].l7 else n for s, n in self.replicas.items())
        self._known: dict[frozenset, tuple[int, int, int]] = {}

    def known(self, callers: frozenset[str]) -> tuple[int, int, int]:
        """(services known, their replicas, their endpoints as a micro-proxy sees them)."""
        if self.scope == "all":
            return len(self.replicas), self.total_replicas, self.l7_endpoints_all
        got = self._known.get(callers)
        if got is None:
            called = {t for s in callers for t in self.cluster.calls_from[s]}
            got = (len(called), sum(self.replicas[t] for t in called),
                   sum(1 if self.cluster.services[t].l7 else self.replicas[t] for t in called))
            self._known[callers] = got
        return got

    def counts(self, proxy: SimProxy) -> dict[str, int]:
        c = self.cluster
        if proxy.role in ("sidecar", "micro"):
            service = c.pod_by_name[proxy.serves[0]].service
            n, replicas, micro_eps = self.known(frozenset((service,)))
            eps = micro_eps if proxy.role == "micro" else replicas
            return {"listeners": (n > 0) + 1, "clusters": n + 1, "endpoints": eps + 1,
                    "routes": 0 if proxy.role == "micro" else n + 1, "secrets": 1}
        if proxy.role in ("node", "node-sa"):
            by_account: dict[str, set[str]] = {}
            for name in proxy.serves:
                p = c.pod_by_name[name]
                by_account.setdefault(p.service_account, set()).add(p.service)
            chains = endpoints = 0
            for services in by_account.values():
                n, replicas, _ = self.known(frozenset(services))
                chains, endpoints = chains + n, endpoints + replicas
            local = len(set().union(*by_account.values())) if by_account else 0
            return {"listeners": (chains > 0) + 1, "clusters": chains + 1, "endpoints": endpoints,
                    "routes": chains + local, "secrets": len(proxy.identities)}
        sa = proxy.identities[0]
        mine = [s for s in c.spec.services if s.service_account == sa and s.l7]
        return {"listeners": len(mine), "clusters": len(mine), "endpoints": sum(self.replicas[s.name] for s in mine),
                "routes": len(mine), "secrets": 1}
