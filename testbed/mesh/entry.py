"""Where a client holding an SVID connects to reach a service over the mesh's mTLS, and the
client itself: the inbound of a pod's proxy, or in ambient and ztunnel the service
account's waypoint when the service has one; with `mesh.tunnel: hbone`, through an HBONE
tunnel (dial.py). What an attacker with stolen keys dials, through the front door and
around the waypoint, straight to a pod's L4 proxy."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..addressing import HBONE_PORT
from ..cluster import procs
from ..cluster.plan import ClusterPlan
from . import dial as dial_module
from .topology import MeshTopology, has_waypoints, l7_port


@dataclass(frozen=True)
class Entry:
    host: str
    port: int
    authority: str | None = None  # HBONE: the CONNECT target; None: mTLS straight to host:port

    def describe(self) -> str:
        return f"{self.host}:{self.port}" + (f" (HBONE to {self.authority})" if self.authority else "")


def entry_point(plan: ClusterPlan, topo: MeshTopology, service: str) -> Entry:
    """The front door: the way the mesh itself reaches `service`."""
    svc = plan.service(service)
    waypoint = topo.waypoint_of(plan, service)
    if waypoint is not None:
        host = plan.node(waypoint.node).fabric_ip
        if waypoint.hbone_port:
            return Entry(host, waypoint.hbone_port, f"{svc.vip}:{svc.port}")
        return Entry(host, l7_port(plan, service))
    return pod_door(plan, topo, svc.pods[0])


def pod_door(plan: ClusterPlan, topo: MeshTopology, pod_name: str) -> Entry:
    """Straight to the proxy serving a pod, around any waypoint."""
    pod = plan.pod(pod_name)
    if has_waypoints(topo.arch) and plan.spec.mesh.tunnel == "hbone":
        return Entry(pod.ip, HBONE_PORT, f"{pod.ip}:{pod.port}")
    return Entry(pod.ip, pod.port)


def doors(plan: ClusterPlan, topo: MeshTopology, service: str) -> list[Entry]:
    """Every way in to `service`: the front door and, behind a waypoint, around it."""
    front = entry_point(plan, topo, service)
    around = pod_door(plan, topo, plan.service(service).pods[0])
    return [front] if around == front else [front, around]


def dial(netns: str, cert: str | Path, key: str | Path, entries: list[Entry], timeout: float = 3.0) -> list[str]:
    """The HTTP status each entry answered a GET with (`000`: refused), dialled from a process
    in `netns` holding that SVID."""
    if not entries:
        return []
    job = {"cert": str(cert), "key": str(key), "timeout": timeout,
           "targets": [{"host": e.host, "port": e.port, "authority": e.authority} for e in entries]}
    r = procs.run([sys.executable, dial_module.__file__], netns, input=json.dumps(job),
                  timeout=10 + len(entries) * (timeout + 1))
    statuses = r.stdout.split()
    if r.returncode != 0 or len(statuses) != len(entries):
        raise RuntimeError(f"dialling from {netns} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return statuses
