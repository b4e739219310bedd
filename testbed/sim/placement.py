"""The simulated cluster: the experiment's cluster, or a scaled-up version of it, placed by
the same planner as a real run (`spec._place_pods`: replicas round-robin over the service's
nodes, in spec order), without the limits of one machine's address plan (addressing.py).

Scaling (`Scale`), documented in docs/simulation.md:
- `nodes`: the spec's nodes, then `nx<k>` (as a sweep names them);
- `services`: the spec's services, then copies of the whole application in turn (copy g of
  service s is `s-c<g>`, with the calls of the original mapped inside the copy), so each
  copy is an application of its own, as teams deploy them;
- `accounts`: the service accounts; by default each copy has its own (`web-c<g>`, as the
  spec's services share them); given, service k runs as `sa<k mod accounts>`;
- `pods_per_node`: nodes x pods_per_node pods spread over the services as evenly as they
  divide (the first ones get one more), and every service's replicas start on the node after
  the previous service's last, so each node holds the same number of pods (the planner's
  round-robin with a rotated node list; the spec's own node pinning is dropped when scaling).

`SimCluster` indexes the placement (pods by node and by service, callers, flows) so that
500 nodes x 30 pods are placed in well under a second."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..spec import Call, ClusterSpec, Pod, Service


@dataclass(frozen=True)
class Scale:
    nodes: int | None = None
    pods_per_node: int | None = None
    services: int | None = None
    accounts: int | None = None

    @property
    def scaled(self) -> bool:
        return any(v is not None for v in (self.nodes, self.pods_per_node, self.services, self.accounts))

    def as_dict(self) -> dict:
        return {"nodes": self.nodes, "podsPerNode": self.pods_per_node, "services": self.services,
                "accounts": self.accounts}


def _services(spec: ClusterSpec, n: int) -> tuple[list[Service], list[Call]]:
    base = list(spec.services)
    if n <= len(base):
        kept = {s.name for s in base[:n]}
        return base[:n], [c for c in spec.calls if c.source in kept and c.target in kept]
    out, calls = list(base), list(spec.calls)
    group: list[Service] = []
    for k in range(len(base), n):
        g, original = k // len(base), base[k % len(base)]
        group.append(replace(original, name=f"{original.name}-c{g}",
                             service_account=f"{original.service_account}-c{g}"))
        if len(group) == len(base) or k == n - 1:
            names = {s.name for s in group}
            calls += [Call(f"{c.source}-c{g}", f"{c.target}-c{g}") for c in spec.calls
                      if f"{c.source}-c{g}" in names and f"{c.target}-c{g}" in names]
            out += group
            group = []
    return out, calls


def scaled_spec(spec: ClusterSpec, scale: Scale) -> ClusterSpec:
    """The cluster at `scale` (the spec itself when nothing is scaled)."""
    if not scale.scaled:
        return spec
    nodes = tuple(spec.nodes[:scale.nodes]) if scale.nodes else spec.nodes
    if scale.nodes:
        nodes += tuple(f"nx{k}" for k in range(len(nodes), scale.nodes))
    services, calls = _services(spec, scale.services or len(spec.services))
    if scale.accounts:
        services = [replace(s, service_account=f"sa{k % scale.accounts}") for k, s in enumerate(services)]
    if scale.pods_per_node:
        total = len(nodes) * scale.pods_per_node
        each, extra = divmod(total, len(services))
        services = [replace(s, replicas=each + (k < extra)) for k, s in enumerate(services)]
    placed, offset = [], 0
    for s in services:
        if s.replicas == 0:
            continue
        rotated = nodes[offset % len(nodes):] + nodes[:offset % len(nodes)]
        placed.append(replace(s, nodes=rotated))
        offset += s.replicas
    names = {s.name for s in placed}
    calls = [c for c in calls if c.source in names and c.target in names]
    return replace(spec, nodes=nodes, services=tuple(placed), calls=tuple(calls))


@dataclass
class SimCluster:
    """A placed cluster with the look-ups the model needs, each O(1)."""

    spec: ClusterSpec
    pods: tuple[Pod, ...] = field(init=False)
    nodes: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        spec = self.spec
        self.pods, self.nodes = spec.pods, spec.nodes
        self.services = {s.name: s for s in spec.services}
        self.pod_by_name = {p.name: p for p in spec.pods}
        self.pods_by_service: dict[str, list[Pod]] = {s.name: [] for s in spec.services}
        self.pods_by_node: dict[str, list[Pod]] = {n: [] for n in spec.nodes}
        for p in spec.pods:
            self.pods_by_service[p.service].append(p)
            self.pods_by_node[p.node].append(p)
        self.calls_from: dict[str, list[str]] = {s.name: [] for s in spec.services}
        self.callers_of: dict[str, list[str]] = {s.name: [] for s in spec.services}
        for c in spec.calls:
            self.calls_from[c.source].append(c.target)
            self.callers_of[c.target].append(c.source)
        # (source pod, destination service), in the order the traffic driver lists them
        self.flows = [(p.name, t) for p in spec.pods for t in self.calls_from[p.service]]

    def replicas(self, service: str) -> int:
        return len(self.pods_by_service[service])

    def accounts(self) -> list[str]:
        return sorted({s.service_account for s in self.spec.services})
