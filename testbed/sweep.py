"""Cost sweeps: the experiment's cluster, resized along one parameter, step by step. Pure:
each step is a cluster spec (checked like one a user wrote), from which the run is built.

- `podsPerService: N`: every service gets N replicas.
- `nodes: N`: the cluster gets N nodes (the spec's first ones, then `nx<k>`); services pinned
  to nodes that no longer exist spread over all of them.
- `services: N`: the spec's first N services; past the spec's own, copies `x<k>` of them in
  turn (copy k of service k mod n: its account, port, replicas and placement), each called
  by the original's callers. The traffic grows with the services; every proxy's config grows
  with them when `mesh.scope` is `all`, only the callers' when it is `calls`.
"""

from __future__ import annotations

from dataclasses import replace

from .spec import Call, ClusterSpec, Service, loads_cluster, to_yaml


def _resized_nodes(spec: ClusterSpec, n: int) -> ClusterSpec:
    nodes = tuple(spec.nodes[:n]) + tuple(f"nx{k}" for k in range(len(spec.nodes), n))
    services = tuple(replace(s, nodes=tuple(x for x in s.nodes if x in nodes)) for s in spec.services)
    return replace(spec, nodes=nodes, services=services)


def _resized_services(spec: ClusterSpec, n: int) -> ClusterSpec:
    own = list(spec.services[:n])
    kept = {s.name for s in own}
    calls = [c for c in spec.calls if c.source in kept and c.target in kept]
    for k in range(len(spec.services), n):
        original = spec.services[k % len(spec.services)]
        copy = Service(f"x{k}", original.service_account, original.port, original.replicas, original.nodes,
                       original.l7)
        own.append(copy)
        calls += [Call(c.source, copy.name) for c in spec.calls if c.target == original.name and c.source in kept]
    return replace(spec, services=tuple(own), calls=tuple(calls))


def step_cluster(spec: ClusterSpec, parameter: str, value: int) -> ClusterSpec:
    """The cluster at one step of a sweep (SpecError when it does not fit the limits)."""
    if parameter == "podsPerService":
        resized = replace(spec, services=tuple(replace(s, replicas=value) for s in spec.services))
    elif parameter == "nodes":
        resized = _resized_nodes(spec, value)
    elif parameter == "services":
        resized = _resized_services(spec, value)
    else:
        raise ValueError(f"unknown sweep parameter {parameter!r}")
    return loads_cluster(to_yaml(resized), f"<{spec.name} with {parameter}={value}>")
