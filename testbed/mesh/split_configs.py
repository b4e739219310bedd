"""Config contexts of the architectures that split L4 from L7 (ambient, ztunnel): the L4 proxies
(a micro-proxy per pod, or a ztunnel per node holding the SVID of every pod on it) and the
waypoints (an L7 proxy per service account, with an identity of its own).

Two ways to carry an app connection between them (`mesh.tunnel`):
- hbone (Istio's HBONE): an HTTP/2 CONNECT stream inside an mTLS connection to the peer's
  port 15008 (a waypoint: its own port), pooled by Envoy per (client identity, peer): many
  app connections share one TLS connection. An L4 proxy tunnels to the chosen pod's
  address, port 15008 (captured by that pod's L4 proxy), which delivers to the pod the
  connection is addressed to; the CONNECT target names what the app dialled (the
  service's VIP:port; from a waypoint, the pod's ip:port). A waypoint routes by that target.
  (Envoy could pass the chosen pod on as the target only through an internal listener,
  which on Envoy 1.40 loses a plain TCP stream's last bytes when the app closes right
  after answering: seen as resets. Waypoints use one behind their HTTP router, which
  reads whole answers.)
- tcp: one mTLS connection per app connection, to the waypoint's listener for the service
  or to the destination pod's port (captured by its L4 proxy).

Who may call: an L4 proxy admits traffic for a pod behind a waypoint only from that
waypoint's identity, and callers' identities only for services with `l7: false`. A waypoint
terminates the caller's mTLS, so it authenticates the caller itself; with hbone, the
CONNECT listener hands that identity (filter state shared with the upstream) to the
service's internal listener, whose HTTP RBAC answers 403 to anyone `calls` does not allow.
"""

from __future__ import annotations

from ..addressing import HBONE_PORT
from ..cluster.plan import ClusterPlan
from ..identity import spiffe_id
from .config_parts import allowed_callers, cluster, endpoints, known_services, local_cluster, mesh_cluster
from .topology import FINAL_HOP_MARK, MeshTopology, Proxy, l7_port

CALLER_KEY = "testbed.caller"  # filter state: the SPIFFE ID a waypoint's HBONE listener authenticated


def _admitted(plan: ClusterPlan, topo: MeshTopology, pod) -> list[str]:
    """Whom the L4 proxy serving `pod` admits: the waypoint alone when calls to the pod's
    service go through one (no sibling of the account can go around it), else the callers."""
    waypoint = topo.waypoint_of(plan, pod.service)
    if waypoint is not None:
        return [spiffe_id(plan.spec.mesh.trust_domain, waypoint.identities[0])]
    return allowed_callers(plan, pod.service)


def _final(proxy: Proxy, pod) -> dict:
    """The last hop to the app: loopback for a micro-proxy, the pod's veth for a ztunnel
    (marked, so the node's capture lets it pass)."""
    if proxy.role == "micro":
        return local_cluster(f"in|{pod.name}", pod.port)
    return cluster(f"in|{pod.name}", [{"ip": pod.ip, "port": pod.port}], mark=FINAL_HOP_MARK)


def _pod_endpoints(plan: ClusterPlan, service: str, listener: str) -> list[dict]:
    """A service's pods as endpoints of an internal listener that tunnels to each one (a
    waypoint's `originate`, given the pod's ip:port as its local address)."""
    return [{"internal": listener, "id": name, "local": f"{plan.pod(name).ip}:{plan.service(service).port}"}
            for name in plan.service(service).pods]


def l4_context(plan: ClusterPlan, topo: MeshTopology, proxy: Proxy) -> dict:
    td, hbone = plan.spec.mesh.trust_domain, proxy.hbone_port is not None
    shared = proxy.role == "ztunnel"  # picks the identity by the source pod's address
    pods = [plan.pod(name) for name in proxy.serves]
    outbound, clusters, names = [], [], set()

    def add(c: dict) -> None:
        if c["name"] not in names:
            names.add(c["name"])
            clusters.append(c)

    for sa in proxy.identities:
        mine = [p for p in pods if p.service_account == sa]
        tag = f"{sa}|" if shared else ""
        for svc in known_services(plan, {p.service for p in mine}):
            chain = {"name": f"out|{tag}{svc.name}", "vip": svc.vip, "port": svc.port,
                     "sources": [p.ip for p in mine] if shared else [], "hostname": None}
            waypoint = topo.waypoint_of(plan, svc.name)
            if not hbone:
                if waypoint is not None:
                    eps = [{"ip": plan.node(waypoint.node).fabric_ip, "port": l7_port(plan, svc.name)}]
                    peer = waypoint.identities[0]
                else:
                    eps, peer = endpoints(plan, svc.name), svc.service_account
                chain["cluster"] = chain["name"]
                add(mesh_cluster(chain["name"], eps, sa, peer, td))
            elif waypoint is not None:  # one pooled tunnel per (caller identity, waypoint)
                chain.update(cluster=f"wp|{sa}|{waypoint.account}", hostname=f"{svc.vip}:{svc.port}")
                add(mesh_cluster(chain["cluster"], [{"ip": plan.node(waypoint.node).fabric_ip,
                                                     "port": waypoint.hbone_port}],
                                 sa, waypoint.identities[0], td, h2=True))
            else:  # to the chosen pod's L4 proxy: pooled per (caller identity, service, pod)
                chain.update(cluster=chain["name"], hostname=f"{svc.vip}:{svc.port}")
                add(mesh_cluster(chain["name"], [{"ip": plan.pod(p).ip, "port": HBONE_PORT} for p in svc.pods],
                                 sa, svc.service_account, td, h2=True))
            outbound.append(chain)
    inbound, tunnels = [], []
    for pod in pods:  # a chain per pod, picked by the destination address: server cert, policy, last hop
        final = _final(proxy, pod)
        add(final)
        chain = {"name": pod.name, "pods": [pod.ip] if shared else [], "port": pod.port, "sa": pod.service_account,
                 "allowed": _admitted(plan, topo, pod), "cluster": final["name"]}
        (tunnels if hbone else inbound).append(chain)
    return {"shared": shared, "outbound": outbound, "inbound": inbound, "hbone": tunnels,
            "plaintext": {"cluster": _final(proxy, pods[0])["name"]} if hbone else None, "clusters": clusters}


def waypoint_context(plan: ClusterPlan, topo: MeshTopology, proxy: Proxy) -> dict:
    td, me, sa = plan.spec.mesh.trust_domain, proxy.identities[0], proxy.account  # me: waypoint-<sa>
    services = [svc for svc in plan.services if svc.service_account == sa and plan.spec.service(svc.name).l7]
    listeners, clusters, targets = [], [], []
    hbone = proxy.hbone_port is not None
    for svc in services:
        out = f"l7|{svc.name}"
        listeners.append({"service": svc.name, "port": l7_port(plan, svc.name), "sa": me,
                          "allowed": allowed_callers(plan, svc.name), "cluster": out, "listener": f"l7|{svc.name}"})
        if hbone:
            targets.append({"name": svc.name, "authority": f"{svc.vip}:{svc.port}", "cluster": f"main|{svc.name}"})
            # the caller's identity rides the internal connection: pooled per caller connection,
            # or one caller's connection would carry another's requests as the first caller's
            clusters.append(cluster(f"main|{svc.name}", [{"internal": f"l7|{svc.name}", "id": svc.name, "local": None}],
                                    internal=True, per_downstream=True))
            clusters.append(cluster(out, _pod_endpoints(plan, svc.name, "originate"), internal=True))
        else:
            clusters.append(mesh_cluster(out, endpoints(plan, svc.name), me, sa, td))
    if hbone:
        clusters.append(cluster("tunnel", tls={"sa": me, "peer": spiffe_id(td, sa)}, original_dst=True,
                                port_override=HBONE_PORT, h2=True))
    return {"listeners": listeners, "clusters": clusters, "caller_key": CALLER_KEY,
            "hbone": {"port": proxy.hbone_port, "sa": me, "targets": targets} if hbone else None}
