"""Where a client holding an SVID connects to reach a service over the mesh's mTLS: the
inbound of a pod's proxy, or, in ambient, the service account's L7 proxy when the service
has one. What an attacker with stolen keys would dial."""

from __future__ import annotations

from ..cluster.plan import ClusterPlan
from .topology import MeshTopology, l7_port


def entry_point(plan: ClusterPlan, topo: MeshTopology, service: str) -> tuple[str, int]:
    svc = plan.service(service)
    if topo.arch == "ambient" and plan.spec.service(service).l7:
        l7 = topo.l7_for(svc.service_account)
        return plan.node(l7.node).fabric_ip, l7_port(plan, service)
    pod = plan.pod(svc.pods[0])
    return pod.ip, pod.port
