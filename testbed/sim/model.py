"""One architecture of an experiment, simulated: its proxies (topology.py), what it costs
(cost.py), the fault schedule played against its proxies (faults.py), what each outage does
to the flows crossing it (flows.py), and each fault's blast radius (radius.py). The result
has the shape experiment_runner.run_arch gives a real run, so the journal, the terminal
tables and the report read it alike."""

from __future__ import annotations

from ..chaos.kinds import KINDS
from ..experiment import Experiment
from ..measure.blast import Window
from ..measure.outcome import fault_entry as never_injected
from . import cost, radius
from .faults import Schedule
from .flows import Exposure, FlowIndex, Grid
from .params import Params
from .placement import SimCluster
from .topology import SimTopology

CLEAN_WINDOW = 3.0  # seconds of traffic after the faults, as experiment_runner.CLEAN_WINDOW
LIST_ALL_FLOWS = 1000  # up to this many flows, each fault entry lists every flow (as a real run does)


def normal_latency(topo: SimTopology, p: Params, redirect: str) -> list[float]:
    """Per flow, the latency every unaffected request takes: the p99 of the `none` baseline
    plus that of each proxy crossed (so a flow's baseline p99 is this figure)."""
    c = topo.cluster
    base = p.latency_none["p99"]
    out = []
    for src, dst in c.flows:
        ks = topo.path(src, c.pods_by_service[dst][0].name, dst) if topo.proxies else []
        out.append(round(base + sum(p.hop_ms(redirect, topo.proxies[k].role, "p99") for k in ks), 3))
    return out


class ArchRun:
    """What one simulated architecture gives: the journal's result, and the per-flow traces
    (for the timeline file)."""

    def __init__(self, exp: Experiment, cluster: SimCluster, arch: str, params: Params, hosts: str,
                 faults_too: bool = True):
        self.exp, self.arch, self.p, self.hosts = exp, arch, params, hosts
        self.topo = SimTopology(cluster, arch)
        self.grid = Grid(exp.rate, exp.duration)
        self.traces: dict[int, radius.Trace] = {}
        self.normal: list[float] = []
        self.faults_too = faults_too
        self.traffic_ran = False  # whether the traffic phase was run (and so a timeline exists)

    def result(self) -> dict:
        exp = self.exp
        out: dict = {"architecture": self.arch, "run": f"sim-{self.arch}", "status": "completed", "error": None,
                     "faults": [], "cost": None, "up_s": None, "timings": {}}
        if exp.cost is not None:
            out["cost"] = cost.section(self.topo, self.p, exp.cost, exp.redirect, self.hosts, exp.rate)
        if self.faults_too and (self.applicable() or exp.cost is None):
            self._traffic(out)
        return out

    def applicable(self) -> list:
        """The faults the traffic phase is run for (experiment_runner.run_arch): in `none`,
        only those that need no proxy. With none of them and a cost window, a real run
        measures the cost alone, and so does the model."""
        return [f for f in self.exp.faults if self.arch != "none" or not KINDS[f.kind].needs_proxy]

    def _traffic(self, out: dict) -> None:
        exp, topo, grid = self.exp, self.topo, self.grid
        self.traffic_ran = True
        runs = Schedule(exp.faults, topo, self.p, self.hosts).play()
        index = FlowIndex(topo)
        exposures: dict[int, list[Exposure]] = {}
        per_fault: list[dict[int, list[Exposure]]] = []
        for run in runs:
            mine: dict[int, list[Exposure]] = {}
            for outage in run.outages:
                for i, ex in index.expose(outage, self.p.effect):
                    exposures.setdefault(i, []).append(ex)
                    mine.setdefault(i, []).append(ex)
            per_fault.append(mine)
        self.normal = normal_latency(topo, self.p, exp.redirect)
        self.traces = {i: radius.trace(exs, grid, index.phase[i], index.replicas[i], self.normal[i])
                       for i, exs in exposures.items()}
        baseline = Window(1.0, exp.baseline_end)
        injections = [f.at for f in exp.faults]
        list_all = len(index.flows) <= LIST_ALL_FLOWS
        for run, mine in zip(runs, per_fault, strict=True):
            if run.not_applicable:  # as measure/outcome.fault_entry records a fault never injected
                out["faults"].append(never_injected(run.spec, run.facts(), {"not_applicable": run.not_applicable},
                                                    {"injected_at": None, "reverted_at": None, "ended_at": None},
                                                    [], [], index.flows, baseline, injections, exp.duration,
                                                    exp.error_points, exp.latency_factor))
                continue
            if run.not_modelled:
                out["faults"].append({"kind": run.spec.kind, "target": run.spec.target.__dict__, "at": run.spec.at,
                                      "duration": run.spec.duration, **run.times(), **run.facts(),
                                      "identities_exposed": [], "reachable_pairs": [], "details": {},
                                      "measured": False, "simulated": run.not_modelled})
                continue
            entry = radius.fault_entry(run.spec, run.facts(), dict(run.details), run.times(), self.traces, exposures,
                                       index, self.normal, grid, baseline, injections, exp.duration,
                                       exp.error_points, exp.latency_factor, list_all)
            listed = "all" if list_all else "reached" if entry.get("flows") or not entry.get("flows_affected") \
                else "none: the fault window holds no request, every flow counts as stopped"
            entry["model"] = {"effects": sorted({ex.effect_key for exs in mine.values() for ex in exs}),
                              "flows_listed": listed, "outages": len(run.outages)}
            out["faults"].append(entry)
        out["requests"] = grid.count * len(index.flows)
        out["not_sent"] = 0
        out["generator_overloaded"] = False
        clean = int(CLEAN_WINDOW * exp.rate) * len(index.flows)
        out["clean_after"] = {"requests": clean, "failed": 0, "p99_ms": max(self.normal, default=None)}

    def timeline(self) -> list[dict]:
        """Per second and flow, as measure.blast.timeline gives it (requests, failures, p50
        and p99 of the successes)."""
        from ..measure.stats import percentile

        rows = []
        flows = self.topo.cluster.flows
        for i, (src, dst) in enumerate(flows):
            tr = self.traces.get(i)
            for sec in range(int(self.exp.duration) + 1):
                n = self.grid.between(sec, sec + 1)
                if not n:
                    continue
                failed, ok = 0, []
                if tr is not None:
                    inside = [(f, lat) for t, f, lat in zip(tr.t, tr.failed, tr.latency, strict=True)
                              if sec <= t < sec + 1]
                    failed = sum(f for f, _ in inside)
                    ok = [lat for f, lat in inside if not f]
                    ok += [self.normal[i]] * (n - len(inside))
                else:
                    ok = [self.normal[i]] * n
                rows.append({"second": sec, "src": src, "dst": dst, "requests": n, "failed": failed,
                             "p50_ms": round(percentile(ok, 50), 3) if ok else "",
                             "p99_ms": round(percentile(ok, 99), 3) if ok else ""})
        rows.sort(key=lambda r: (r["second"], r["src"], r["dst"]))
        return rows
