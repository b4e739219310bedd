"""What every fault shares: its context, target resolution and the blast-radius facts that
follow from the architecture alone (proxies_hit, pods_served)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..cluster.backend import ClusterBackend
from ..cluster.plan import ClusterPlan
from ..experiment import FaultSpec, Target
from ..mesh.stage import MeshStage
from ..mesh.topology import Proxy


@dataclass
class ChaosContext:
    plan: ClusterPlan
    cluster: ClusterBackend
    mesh: MeshStage | None  # None for the `none` architecture
    rate: float = 0.0  # the experiment's traffic: requests per second per flow
    records: Path | None = None  # where faults' own workers write: outlives the run (its state does not)

    @property
    def arch(self) -> str:
        return self.mesh.topo.arch if self.mesh else "none"


def resolve(ctx: ChaosContext, spec: FaultSpec) -> list[Proxy]:
    """The proxies a fault on this target touches, in this architecture."""
    if ctx.mesh is None:
        return []
    topo, plan, t = ctx.mesh.topo, ctx.plan, spec.target
    out: dict[str, Proxy] = {}
    for name in target_pods(ctx, spec):  # `proxy: l7` picks the pod's waypoint; otherwise the proxy serving it
        proxy = topo.waypoint_of(plan, plan.pod(name).service) if t.proxy == "l7" else topo.serving(name)
        if proxy is not None:
            out[proxy.name] = proxy
    return list(out.values())


def at_l7(spec: FaultSpec, ctx: ChaosContext) -> FaultSpec:
    """The spec aimed at the L7 proxy where only it carries L7 config (ambient: micro-proxies
    run no HTTP filters, no routes, no extensions); unchanged elsewhere."""
    topo = ctx.mesh.topo if ctx.mesh else None
    if topo is None or spec.target.proxy == "l7" or not any(p.role == "l7" for p in topo.proxies):
        return spec
    t = spec.target
    return FaultSpec(spec.kind, Target(t.kind, t.name, "l7"), spec.at, spec.duration, spec.options, spec.line)


def target_pods(ctx: ChaosContext, spec: FaultSpec) -> list[str]:
    """The pods a fault's target names."""
    plan, t = ctx.plan, spec.target
    if t.kind == "pod":
        return [t.name]
    if t.kind == "service":
        return list(plan.service(t.name).pods)
    return [p.name for p in plan.pods_on(t.name)]


class Fault:
    kind = "?"

    def __init__(self, spec: FaultSpec, ctx: ChaosContext, index: int = 0):
        """`index`: the fault's place in its experiment; what it creates is named after it, so
        two faults never collide."""
        self.spec, self.ctx, self.index = spec, ctx, index
        self.proxies = resolve(ctx, spec)
        self.details: dict = {}
        self.injected_at: float | None = None  # epoch seconds, as it actually happened
        self.reverted_at: float | None = None

    def start(self) -> None:
        """Inject, once. The time is taken first: the effect begins while inject() runs."""
        if self.injected_at is None:
            self.injected_at = time.time()
            self.inject()

    def stop(self) -> None:
        """Revert, once, and only what was injected (safe on every teardown path)."""
        if self.injected_at is not None and self.reverted_at is None:
            try:
                self.revert()
            finally:
                self.reverted_at = time.time()

    def arm(self) -> None:
        """Just before the traffic starts: take what the fault compares its window with."""

    def finish(self) -> None:
        """Once the traffic is over, before it is measured: gather what the fault's own
        workers recorded."""

    def ended_at(self) -> float | None:
        """When the fault stopped acting (epoch), if sooner than its revert returned (a
        crashed proxy is back when the supervisor restarted it)."""
        return self.reverted_at

    @property
    def revert_at(self) -> float:
        """Seconds after traffic start when the fault is over (recovery is measured from here)."""
        return self.spec.at + self.spec.duration

    def describe(self) -> str:
        names = ", ".join(p.name for p in self.proxies) or "no proxy"
        return f"{self.kind} on the proxies serving {self.spec.target.describe()} ({names})"

    def facts(self) -> dict:
        """Deterministic from the architecture: what the fault touches and whom that serves."""
        served = sorted({pod for p in self.proxies for pod in p.serves})
        return {"proxies_hit": len(self.proxies), "proxies": [p.name for p in self.proxies],
                "pods_served": len(served), "pods_served_list": served,
                "target_pods": sorted(target_pods(self.ctx, self.spec))}

    def inject(self) -> None:
        raise NotImplementedError

    def revert(self) -> None:
        raise NotImplementedError
