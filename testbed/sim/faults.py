"""The fault schedule as a discrete-event simulation (simpy): the same order and the same
blocking as chaos/schedule.py (one event after the other, an inject or a revert taking the
time it takes, later events waiting for it), and for each fault kind what it does to the
proxies it resolves to (chaos/base.resolve), as `Outage`s in time:

- proxy-crash: each proxy is down from the kill until the supervisor's restart delay plus
  the role's restart time; the revert waits until it is back.
- proxy-hang: each proxy is stopped until the revert.
- upgrade: a roll, one proxy after the other, each down for the role's restart time
  (`restart`) or drained by a hot restart (`hot-restart`); the revert waits for the roll.
- wasm: each proxy hot-restarted onto the extension (in ambient and ztunnel the waypoint), then, by
  behaviour and failure policy, the whole proxy stalls (`loop`, at --concurrency 1 every
  listener hangs), or the target's traffic fails there (`trap`, `memory` and `deny-all`
  failing closed or reloading; `deny-all` also failing open), or nothing (`trap`, `memory`
  failing open); the revert replaces each proxy with a fresh process (a restart).
- identity-compromise: nothing to traffic; the keys the proxies hold, and the services each
  stolen identity gets into by some door (SimTopology.reaches: what `calls` allows an
  account, and a waypoint's own identity around that waypoint).
- drop, tcp-reset, delay: not modelled (their effect is the kernel's TCP: retransmissions,
  resets); their journal entries say so and hold no figure.

A fault that acts on proxies where none serves its target (architecture `none`, or `proxy:
l7` where no waypoint fronts it) is not applicable, as chaos/registry.py records it: never
injected, its entry says why (`details.not_applicable`) and is not measured."""

from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from ..chaos.kinds import KINDS
from ..experiment import FaultSpec, Target
from ..identity import spiffe_id
from ..mesh.topology import SPLIT_ARCHITECTURES
from .flows import Outage
from .params import Params
from .topology import SimProxy, SimTopology

NOT_MODELLED = {k: "not modelled: a packet fault acts through the kernel's TCP (retransmissions, resets, "
                   "queueing), which the model does not represent" for k in ("drop", "tcp-reset", "delay")}
WASM_FAILS = {"deny-all": ("closed", "open", "reload"), "trap": ("closed", "reload"), "memory": ("closed", "reload")}


@dataclass
class FaultRun:
    spec: FaultSpec
    proxies: list[SimProxy]
    outages: list[Outage] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    injected_at: float | None = None
    reverted_at: float | None = None
    ended_at: float | None = None
    not_modelled: str | None = None
    not_applicable: str | None = None  # why: no proxy to act on (never injected)

    def times(self) -> dict:
        def r(t):
            return None if t is None else round(t, 3)
        return {"injected_at": r(self.injected_at), "reverted_at": r(self.reverted_at),
                "ended_at": r(self.ended_at if self.ended_at is not None else self.reverted_at)}

    def facts(self) -> dict:
        served = sorted({pod for p in self.proxies for pod in p.serves})
        return {"proxies_hit": len(self.proxies), "proxies": [p.name for p in self.proxies],
                "pods_served": len(served), "pods_served_list": served}


class Schedule:
    """Plays an experiment's faults against one architecture's proxies."""

    def __init__(self, faults: tuple[FaultSpec, ...], topo: SimTopology, params: Params, hosts: str = "machine"):
        self.topo, self.p = topo, params
        self.host = (lambda proxy: "machine") if hosts == "machine" else (lambda proxy: proxy.node)
        self.envoys: dict[str, int] = {}  # host -> Envoys on it (their start-up contends for its CPUs)
        for proxy in topo.proxies:
            self.envoys[self.host(proxy)] = self.envoys.get(self.host(proxy), 0) + 1
        self.env = simpy.Environment()
        self.runs = [self._run(f) for f in faults]
        self._rolls: dict[int, simpy.Process] = {}  # fault -> its upgrade roll
        self._extensions: dict[int, list[Outage]] = {}  # fault -> what its extensions do, still open-ended

    def _run(self, f: FaultSpec) -> FaultRun:
        """The fault as this architecture resolves it (chaos/registry.make_fault): a wasm
        fault in ambient or ztunnel aims at the waypoint (L4 proxies run no extensions,
        and the entry's target says so, as a real run's does); a proxy fault with no proxy
        to act on is not applicable."""
        arch, aimed = self.topo.arch, f
        if f.kind == "wasm" and arch in SPLIT_ARCHITECTURES and f.target.proxy != "l7":
            t = f.target
            aimed = FaultSpec(f.kind, Target(t.kind, t.name, "l7"), f.at, f.duration, f.options, f.line)
        proxies = self._resolve(aimed)
        if needs_proxy(f.kind) and not proxies:  # recorded with the fault as the experiment gave it
            why = f"{f.kind} acts on proxies, and architecture {arch} has no proxy" if arch == "none" else \
                f"no proxy of {arch} serves {f.target.describe()}"
            return FaultRun(f, [], not_applicable=why)
        return FaultRun(aimed, proxies)

    def _resolve(self, f: FaultSpec) -> list[SimProxy]:
        if self.topo.arch == "none":
            return []
        target, c = f.target, self.topo.cluster
        pods = [target.name] if target.kind == "pod" else \
            [p.name for p in (c.pods_by_service if target.kind == "service" else c.pods_by_node)[target.name]]
        return self.topo.resolve(target, pods)

    def play(self) -> list[FaultRun]:
        self.env.process(self._schedule())
        self.env.run()
        return self.runs

    def _schedule(self):
        events = [(r.spec.at, 1, "inject", i) for i, r in enumerate(self.runs)]
        events += [(r.spec.at + r.spec.duration, 0 if r.spec.duration else 2, "revert", i)
                   for i, r in enumerate(self.runs)]
        for at, _, what, i in sorted(events):
            if at > self.env.now:
                yield self.env.timeout(at - self.env.now)
            run = self.runs[i]
            if run.not_applicable:
                continue  # nothing to inject or revert (chaos/registry.NotApplicable)
            if what == "inject":
                yield self.env.timeout(self.p.inject_lag)
                run.injected_at = self.env.now
                yield self.env.process(self._inject(run, i))
            elif run.injected_at is not None:
                yield self.env.process(self._revert(run, i))
                run.reverted_at = self.env.now

    def _role_time(self, table: dict, proxy: SimProxy, concurrent: int = 1) -> float:
        return self.p.time(table, proxy.role, self.envoys[self.host(proxy)], concurrent)

    def _inject(self, run: FaultRun, i: int):
        env, kind, spec = self.env, run.spec.kind, run.spec
        if kind in NOT_MODELLED:
            run.not_modelled = NOT_MODELLED[kind]
        elif kind == "proxy-crash":
            delay = spec.options.get("restartDelay") or 0.0
            run.details = {"killed": [p.name for p in run.proxies]}
            ends = []
            at_once: dict[str, int] = {}
            for p in run.proxies:
                at_once[self.host(p)] = at_once.get(self.host(p), 0) + 1
            for p in run.proxies:
                back = env.now + delay + self._role_time(self.p.crash_restart_s, p, at_once[self.host(p)])
                run.outages.append(Outage(p.index, env.now, back, "crash"))
                ends.append(back)
            run.ended_at = max(ends, default=None)
        elif kind == "proxy-hang":
            run.details = {"stopped": [p.name for p in run.proxies]}
        elif kind == "upgrade":
            self._rolls[i] = env.process(self._roll(run, spec.options.get("strategy", "hot-restart")))
        elif kind == "wasm":
            yield from self._wasm_inject(run, i)
        elif kind == "identity-compromise":
            self._identity(run)

    def _roll(self, run: FaultRun, strategy: str):
        run.details["upgrades"] = []
        for p in run.proxies:
            table = self.p.restart_s if strategy == "restart" else self.p.hot_restart_s
            took = self._role_time(table, p)
            cause = "restart" if strategy == "restart" else "drain"
            run.outages.append(Outage(p.index, self.env.now, self.env.now + (took if cause == "restart" else 0.0),
                                      cause))
            run.details["upgrades"].append({"proxy": p.name, "strategy": strategy, "seconds": round(took, 3)})
            yield self.env.timeout(took)

    def _wasm_inject(self, run: FaultRun, i: int):
        behavior = run.spec.options.get("behavior", "loop")
        policy = run.spec.options.get("failurePolicy", "closed")
        services = frozenset(self._target_services(run.spec))
        run.details["loaded"] = []
        run.details["effect"] = "proxy stalls" if behavior == "loop" else \
            "target's traffic fails" if policy in WASM_FAILS.get(behavior, ()) else "bypassed"
        pending = self._extensions[i] = []
        for p in run.proxies:
            took = self._role_time(self.p.hot_restart_s, p)
            run.outages.append(Outage(p.index, self.env.now, self.env.now, "drain"))
            if behavior == "loop":
                pending.append(Outage(p.index, self.env.now, self.env.now, "wasm-loop"))
            elif policy in WASM_FAILS.get(behavior, ()):
                pending.append(Outage(p.index, self.env.now, self.env.now, "wasm-fail", services))
            run.details["loaded"].append({"proxy": p.name, "strategy": "hot-restart", "seconds": round(took, 3)})
            yield self.env.timeout(took)

    def _target_services(self, spec: FaultSpec) -> set[str]:
        c, t = self.topo.cluster, spec.target
        if t.kind == "service":
            return {t.name}
        if t.kind == "pod":
            return {c.pod_by_name[t.name].service}
        return {p.service for p in c.pods_by_node[t.name]}

    def _revert(self, run: FaultRun, i: int):
        env, kind = self.env, run.spec.kind
        if kind == "proxy-crash":
            if run.ended_at is not None and run.ended_at > env.now:
                yield env.timeout(run.ended_at - env.now)
            yield env.timeout(self.p.ready_poll if run.proxies else self.p.revert_lag)
        elif kind == "proxy-hang":
            for p in run.proxies:
                run.outages.append(Outage(p.index, run.injected_at, env.now, "hang"))
            yield env.timeout(self.p.revert_lag)
        elif kind == "upgrade":
            roll = self._rolls.get(i)
            if roll is not None and not roll.triggered:
                yield roll
        elif kind == "wasm":
            pending = {o.proxy: o for o in self._extensions.get(i, [])}
            for p in run.proxies:  # each replaced by a fresh process, one after the other
                took = self._role_time(self.p.restart_s, p)
                if p.index in pending:
                    o = pending[p.index]
                    run.outages.append(Outage(o.proxy, o.start, env.now, o.cause, o.services))
                run.outages.append(Outage(p.index, env.now, env.now + took, "restart"))
                yield env.timeout(took)
        else:
            yield env.timeout(self.p.revert_lag)

    def _identity(self, run: FaultRun) -> None:
        """The keys on the compromised proxies, and what each opens (chaos/identity.py
        dials every door of every service with each)."""
        c = self.topo.cluster
        td = c.spec.mesh.trust_domain
        stolen = sorted({sa for p in run.proxies for sa in p.identities})
        run.details["identities_exposed"] = [spiffe_id(td, sa) for sa in stolen]
        run.details["reachable_pairs"] = [[spiffe_id(td, sa), s.name] for sa in stolen for s in c.spec.services
                                          if self.topo.reaches(sa, s.name)]


def needs_proxy(kind: str) -> bool:
    return KINDS[kind].needs_proxy
