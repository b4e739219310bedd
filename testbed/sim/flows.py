"""Traffic in the model: per-flow rates on the real driver's schedule, and what a proxy's
outage does to each request that crosses it.

Every flow sends at `rate` requests/s, request k scheduled at k / rate from the traffic's
start (cluster/agent.py `run_load`), so how many requests a window holds is exact
arithmetic, not a count of events. A flow's requests go round-robin over its service's
replicas: request k to replica (k + phase) mod R, the phase being the flow's index mod R
(Envoy's round-robin balancer; which replica comes first is the model's choice).

An `Outage` is a proxy out of service for a while, for a cause (crash, hang, restart,
wasm-loop, wasm-fail), possibly only for some services (a failing extension acts on its
service's traffic only). An `Exposure` is one flow crossing one such proxy: at its source,
as its waypoint (ambient, ztunnel), or at its destination for the replicas behind it. `outcome` says what
happens to one request; only the requests an outage reaches differ from normal, and only
those are ever looked at (radius.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .params import TIMEOUT, Effect
from .topology import SimTopology


@dataclass(frozen=True)
class Outage:
    proxy: int  # index in the topology
    start: float
    end: float
    cause: str  # crash | hang | restart | wasm-loop | wasm-fail | drain (a hot restart: start == end)
    services: frozenset[str] | None = None  # only calls to these services (wasm-fail), else all


@dataclass
class Exposure:
    outage: Outage
    position: str  # source | l7 | destination
    hits: frozenset[int] | None  # replicas whose requests cross the proxy (None: every request)
    effect: Effect
    effect_key: str

    @property
    def active(self) -> tuple[float, float]:
        return self.outage.start + self.effect.onset, self.outage.end

    @property
    def reach(self) -> float:
        """Until when requests are still touched (the slow tail after the proxy is back)."""
        return self.outage.end + self.effect.after


@dataclass
class Grid:
    """The schedule every flow shares: request k at round(k / rate, 4) (the journal's `t`)."""

    rate: float
    duration: float
    _first: dict = field(default_factory=dict, repr=False)  # at -> first(at): outages share their times

    @property
    def count(self) -> int:
        return int(self.duration * self.rate)

    def t(self, k: int) -> float:
        return round(k / self.rate, 4)

    def first(self, at: float) -> int:
        """The first request scheduled at or after `at`."""
        got = self._first.get(at)
        if got is None:
            got = self._first[at] = self._find(at)
        return got

    def _find(self, at: float) -> int:
        k = max(math.ceil(at * self.rate - 1e-7), 0)
        while k > 0 and self.t(k - 1) >= at:
            k -= 1
        while self.t(k) < at:
            k += 1
        return k

    def between(self, start: float, end: float) -> int:
        """Requests with start <= t < end."""
        a, b = min(self.first(start), self.count), min(self.first(end), self.count)
        return max(b - a, 0)


def _dither(j: int, share: float) -> bool:
    """Whether the j-th of a run of requests is among a `share` of them, spread evenly
    (exactly round(share x n) of the first n, whatever n)."""
    return math.floor((j + 1) * share + 0.5) > math.floor(j * share + 0.5)


class FlowIndex:
    """The flows of a cluster, and which flows cross which proxy: by source pod and by
    destination service, so an outage finds its flows without scanning them all."""

    def __init__(self, topo: SimTopology):
        self.topo = topo
        cluster = topo.cluster
        self.flows = cluster.flows
        self.by_src: dict[str, list[int]] = {}
        self.by_service: dict[str, list[int]] = {}
        for i, (src, dst) in enumerate(self.flows):
            self.by_src.setdefault(src, []).append(i)
            self.by_service.setdefault(dst, []).append(i)
        self.replicas = [cluster.replicas(dst) for _, dst in self.flows]
        self.phase = [i % r for i, r in enumerate(self.replicas)]

    def expose(self, outage: Outage, effect_of) -> list[tuple[int, Exposure]]:
        """Every flow crossing the outage's proxy, with how (`effect_of(cause, role,
        position)` gives the effect and its key: Params.effect). A shared proxy at both ends
        of a flow is its source."""
        topo, k = self.topo, outage.proxy
        proxy = topo.proxies[k]
        found: dict[int, tuple[str, frozenset[int] | None]] = {}
        if proxy.role != "l7":
            for pod in proxy.serves:
                for i in self.by_src.get(pod, ()):
                    found[i] = ("source", None)
        services: dict[str, set[int]] = {}
        for pod in proxy.serves:
            p = topo.cluster.pod_by_name[pod]
            services.setdefault(p.service, set()).add(p.index)
        for service, replicas in services.items():
            if proxy.role == "l7":
                l7 = topo.l7_for(service)
                if l7 is None or l7.index != k:
                    continue
                position, hits = "l7", None
            else:
                position = "destination"
                hits = None if len(replicas) == topo.cluster.replicas(service) else frozenset(replicas)
            for i in self.by_service.get(service, ()):
                found.setdefault(i, (position, hits))
        out = []
        for i, (position, hits) in found.items():
            if outage.services is not None and (self.flows[i][1] not in outage.services or position == "source"):
                continue  # an extension acts on its service's inbound (or L7) traffic only
            effect, key = effect_of(outage.cause, proxy.role, position)
            out.append((i, Exposure(outage, position, hits, effect, key)))
        return out


@dataclass
class Outcome:
    failed: bool
    latency_ms: float  # for a success; for a failure, how long it took to fail

    def worse(self, other: Outcome | None) -> bool:
        return other is None or (self.failed, self.latency_ms) > (other.failed, other.latency_ms)


def requests(ex: Exposure, grid: Grid, phase: int, replicas: int) -> list[int]:
    """The requests (k, in order) the exposure reaches: those crossing the proxy from the
    effect's onset until the slow tail after the outage is over."""
    if ex.outage.cause == "drain":
        return []
    a = grid.first(ex.active[0])
    b = min(grid.first(max(ex.reach, ex.active[1])), grid.count)
    if ex.hits is None:
        return list(range(a, b))
    return sorted(k for j in ex.hits for k in range(a + (j - phase - a) % replicas, b, replicas))


def outcome(ex: Exposure, counters: list[int], t: float, normal_ms: float) -> Outcome | None:
    """What the exposure does to a request at t that crosses its proxy (None: nothing).
    `counters` holds the exposure's running counts (requests while active, waits among
    them): call in schedule order, each request once."""
    start, end = ex.active
    e = ex.effect
    if start <= t < end:
        j = counters[0]
        counters[0] += 1
        if _dither(j, e.fail):
            return Outcome(True, 1.0)
        wait = end - t + e.resume
        w = counters[1]
        counters[1] += 1
        if wait > TIMEOUT:
            return Outcome(True, TIMEOUT * 1000)
        if not _dither(w, e.served):
            return Outcome(True, (end - t) * 1000)
        return Outcome(False, normal_ms + wait * 1000)
    if end <= t < end + e.after and e.after > 0:
        return Outcome(False, normal_ms + e.resume * (1 - (t - end) / e.after) * 1000)
    return None
