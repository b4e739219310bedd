"""Synthetic clusters of a given size, for the scale benchmark and its root test. Pure: the
spec is YAML text a user could have written, checked like any other.

`N` nodes, `S` services of `P / S` replicas each (spread round-robin over the nodes), one
service account per service, and the services called in a chain (svc0 -> svc1 -> ... ->
svc<S-1>): every pod of a calling service calls the next service, so the connectivity
matrix has (S - 1) x (P / S) flows. The issue's sizes: 4 nodes x 20 services x 200 pods
(190 flows), 5 x 25 x 500 (480 flows), 5 x 25 x 800.
"""

from __future__ import annotations

import yaml

from .spec import ClusterSpec, loads_cluster

PORT_BASE = 8000


def scale_yaml(nodes: int, services: int, pods: int, name: str | None = None) -> str:
    """The spec as YAML text; `pods` must be a multiple of `services`."""
    if nodes < 1 or services < 1 or pods < services or pods % services:
        raise ValueError(f"{pods} pods do not split evenly over {services} services")
    replicas = pods // services
    doc = {
        "name": name or f"scale-{nodes}x{services}x{pods}",
        "nodes": [f"n{i + 1}" for i in range(nodes)],
        "services": [{"name": f"svc{k}", "serviceAccount": f"sa{k}", "port": PORT_BASE + k, "replicas": replicas}
                     for k in range(services)],
        "calls": [{"from": f"svc{k}", "to": f"svc{k + 1}"} for k in range(services - 1)],
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)


def scale_spec(nodes: int, services: int, pods: int) -> ClusterSpec:
    return loads_cluster(scale_yaml(nodes, services, pods), f"<scale {nodes}x{services}x{pods}>")


# the sizes the issue names: pods -> (nodes, services)
SIZES = {30: (3, 10), 100: (4, 10), 200: (4, 20), 500: (5, 25), 800: (5, 25)}


def flows(spec: ClusterSpec) -> int:
    return sum(len(spec.calls_from(p.service)) for p in spec.pods)
