"""What every proxy's config is computed from, whatever its role: who may call a service,
which services a proxy knows, where a service's pods are, and the clusters the templates
render (envoy_configs/_macros.j2 `cluster`)."""

from __future__ import annotations

from ..cluster.plan import ClusterPlan
from ..identity import spiffe_id


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


def endpoints(plan: ClusterPlan, service: str) -> list[dict]:
    svc = plan.service(service)
    return [{"ip": plan.pod(p).ip, "port": svc.port} for p in svc.pods]


def cluster(name: str, endpoints: list[dict] | None = None, *, tls: dict | None = None, mark: int | None = None,
            original_dst: bool = False, port_override: int | None = None, h2: bool = False,
            internal: bool = False, per_downstream: bool = False) -> dict:
    """What the `cluster` macro renders: fixed `endpoints` ({ip, port}, or {internal: listener,
    id, local} for an internal listener) or the original destination (`port_override`:
    another port of that address); `tls` {sa, peer}: mTLS as `sa`, accepting only `peer`;
    `h2`: HTTP/2 upstream (what CONNECT tunnels ride); `internal`: the internal-listener
    transport, which hands each endpoint's `local` address to that listener;
    `per_downstream`: a connection pool per downstream connection, so that an upstream
    connection carrying one downstream's state (a caller's identity) never serves another."""
    return {"name": name, "endpoints": endpoints or [], "tls": tls, "mark": mark, "original_dst": original_dst,
            "port_override": port_override, "h2": h2, "internal": internal, "per_downstream": per_downstream}


def mesh_cluster(name: str, endpoints: list[dict], my_id: str, peer_id: str, td: str, h2: bool = False) -> dict:
    """mTLS to `endpoints` presenting `my_id`'s SVID, accepting only `peer_id`'s."""
    return cluster(name, endpoints, tls={"sa": my_id, "peer": spiffe_id(td, peer_id)}, h2=h2)


def local_cluster(name: str, port: int) -> dict:
    return cluster(name, [{"ip": "127.0.0.1", "port": port}])
