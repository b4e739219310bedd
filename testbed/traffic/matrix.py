"""The connectivity matrix: every pod calls every service its service calls (the spec's
`calls`), by virtual IP, a few times, and records which replica answered."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from ..cluster.plan import ClusterPlan


@dataclass
class Edge:
    pod: str
    service: str
    url: str
    answers: Counter = field(default_factory=Counter)  # answering pod -> count
    errors: Counter = field(default_factory=Counter)  # "status 403" / "ConnectionRefusedError" -> count

    @property
    def ok(self) -> bool:
        return not self.errors and sum(self.answers.values()) > 0

    def as_dict(self) -> dict:
        return {"from": self.pod, "to": self.service, "url": self.url, "ok": self.ok,
                "answers": dict(self.answers), "errors": dict(self.errors)}


def edges(plan: ClusterPlan) -> list[tuple[str, str]]:
    """(source pod, destination service) for every pod of every calling service."""
    out = []
    for pod in plan.pods:
        for target in plan.spec.calls_from(pod.service):
            out.append((pod.name, target))
    return out


def probe(cluster, plan: ClusterPlan, pairs: list[tuple[str, str]] | None = None, count: int = 6,
          timeout: float = 2.0, progress=lambda msg: None) -> list[Edge]:
    """Call each (pod, service) `count` times through the pod's agent. `cluster` is any
    backend with `call(pod, url, count, timeout)`. `progress` hears of every edge that fails
    (each failed call may take its whole timeout) and of the count every few seconds."""
    results = []
    todo = pairs if pairs is not None else edges(plan)
    last = time.monotonic()
    for k, (pod, service) in enumerate(todo):
        if time.monotonic() - last > 2:
            progress(f"{k}/{len(todo)} pairs called")
            last = time.monotonic()
        svc = plan.service(service)
        edge = Edge(pod, service, f"http://{svc.vip}:{svc.port}/")
        for r in cluster.call(pod, edge.url, count, timeout):
            if r["status"] == 200:
                edge.answers[r["pod"]] += 1
            else:
                edge.errors[f"status {r['status']}" if r["status"] else r["error"]] += 1
        if edge.errors:
            progress(f"{pod} -> {service}: {sum(edge.errors.values())}/{count} calls failed "
                     f"({', '.join(edge.errors)})")
        results.append(edge)
    return results
