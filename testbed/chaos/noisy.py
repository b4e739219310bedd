"""A noisy neighbour: the target pod multiplies its request rate for the fault window, on
every flow it has, through its proxy like its normal traffic (a second `load` on its own
agent). Who feels it is the isolation question: the flows that cross a proxy the noise
crosses (`sharing`) against the flows that cross none (`apart`), each against its own
baseline, so that what the whole machine feels (2 cores, shared by everything) shows in
`apart` and only what the proxies add shows in the difference. CPU per proxy, over the
baseline and the window, says where the noise was paid for."""

from __future__ import annotations

import json
import os
import time

from ..cluster import agentctl
from ..measure.cost import cpu_between, sample_cpu
from ..measure.stats import percentile
from ..mesh import admin
from ..mesh.topology import crossed
from ..traffic.driver import flows
from .base import ChaosContext, Fault, target_pods
from .kinds import DEFAULT_NOISE_FACTOR

LEAD = 0.2  # seconds between asking the agents and the noise's first request


class NoisyNeighbour(Fault):
    kind = "noisy-neighbour"

    def __init__(self, spec, ctx: ChaosContext, index: int = 0):
        super().__init__(spec, ctx, index)
        self._files: dict[str, str] = {}
        self._armed = None  # the CPU counters when the fault was made, just before the traffic

    @property
    def rate(self) -> float:
        """Extra requests per second on each of the target's flows: its rate times `factor`, or
        `rate`, minus what the traffic sends anyway."""
        total = self.spec.options.get("rate") or self.ctx.rate * self.spec.options.get("factor",
                                                                                        DEFAULT_NOISE_FACTOR)
        return max(total - self.ctx.rate, 0.0)

    def noisy_flows(self) -> list[tuple[str, str]]:
        plan = self.ctx.plan
        return [(pod, svc) for pod in target_pods(self.ctx, self.spec) for svc in
                plan.spec.calls_from(plan.pod(pod).service)]

    def _topo(self):
        return self.ctx.mesh.topo if self.ctx.mesh else None

    def arm(self) -> None:
        if self._armed is None:
            self._armed = sample_cpu(self.ctx.plan, self._topo())

    def inject(self) -> None:
        plan, run = self.ctx.plan, self.ctx.cluster.run
        self._begin = time.time() + LEAD
        self._cpu_at = sample_cpu(plan, self._topo())
        folder = (self.ctx.records or run.dir) / f"noise{self.index}"
        folder.mkdir(parents=True, exist_ok=True)
        for pod in target_pods(self.ctx, self.spec):
            targets = [{"service": s, "url": f"http://{plan.service(s).vip}:{plan.service(s).port}/"}
                       for s in plan.spec.calls_from(plan.pod(pod).service)]
            if not targets or not self.rate:
                continue
            out = str(folder / f"{pod}.jsonl")
            self._files[pod] = out
            agentctl.request(run.agent_socket(pod), {"op": "load", "targets": targets, "rate": self.rate,
                                                     "duration": self.spec.duration, "start": self._begin, "out": out})
        self.details.update(self._groups())
        self.details["concurrency"] = self._concurrency(self.details["loaded_proxies"])
        self.details["noise"] = {"rate_per_flow": round(self.rate, 3), "flows": [f"{s}->{d}" for s, d in
                                                                               self.noisy_flows()]}

    def revert(self) -> None:
        """The noise ends on its own schedule; what it did is read when its last requests are
        answered (within their timeout), without holding the revert."""
        plan = self.ctx.plan
        baseline = cpu_between(self._armed, self._cpu_at) if self._armed else None
        window = cpu_between(self._cpu_at, sample_cpu(plan, self._topo()))
        self.details["cpu"] = _vcpu(baseline, window)

    def ended_at(self) -> float | None:
        begin = getattr(self, "_begin", None)
        return None if begin is None else begin + self.spec.duration

    def finish(self) -> None:
        """Summarise the noise's own requests (called once the traffic is over)."""
        records = []
        for path in self._files.values():
            try:
                with open(path) as f:
                    records += [json.loads(line) for line in f if line.strip()]
            except (OSError, ValueError):
                continue
            for leftover in (path, path + ".done"):
                try:
                    os.unlink(leftover)
                except FileNotFoundError:
                    pass
        if "noise" not in self.details:
            return
        sent = [r for r in records if r.get("error") != "generator-overload"]
        ok = [r["latency_ms"] for r in sent if r.get("status") == 200]
        self.details["noise"].update(
            requests=len(sent), failed=len(sent) - len(ok), not_sent=len(records) - len(sent),
            p50_ms=round(percentile(ok, 50), 3) if ok else None, p99_ms=round(percentile(ok, 99), 3) if ok else None)

    def _concurrency(self, names: list[str]) -> dict[str, int | None]:
        """The worker threads each loaded proxy really runs with (its own `/server_info`)."""
        out = {}
        for name in names:
            p = self.ctx.mesh.topo.proxy(name)
            try:
                _, body = admin.request(p.netns, p.admin_port, "/server_info")
                out[name] = int(json.loads(body)["command_line_options"]["concurrency"])
            except (OSError, ValueError, KeyError):
                out[name] = None
        return out

    def _groups(self) -> dict:
        """Which proxies the noise crosses, and which other flows cross one of them."""
        plan, topo = self.ctx.plan, self._topo()
        noisy = set(target_pods(self.ctx, self.spec))
        loaded = set()
        if topo is not None:
            for src, dst in self.noisy_flows():
                loaded |= crossed(plan, topo, src, dst)
        sharing, apart = [], []
        for src, dst in flows(plan):
            if src in noisy:
                continue
            shared = topo is not None and crossed(plan, topo, src, dst) & loaded
            (sharing if shared else apart).append(f"{src}->{dst}")
        return {"loaded_proxies": sorted(loaded), "sharing_flows": sharing, "apart_flows": apart}


def _vcpu(baseline: dict | None, window: dict) -> dict:
    """CPU as vCPU (seconds of CPU per second) per proxy and for the workloads, over the
    baseline (from the fault's arming to its injection) and the window (to its revert)."""
    def rate(d, key=None, name=None):
        if d is None or not d["seconds"]:
            return None
        v = d[key] if name is None else d["per_proxy"].get(name, 0.0)
        return round(v / d["seconds"], 4)

    return {"baseline_s": baseline["seconds"] if baseline else None, "window_s": window["seconds"],
            "proxies": {name: {"baseline": rate(baseline, name=name), "window": rate(window, name=name)}
                        for name in window["per_proxy"]},
            "workloads": {"baseline": rate(baseline, "workloads"), "window": rate(window, "workloads")}}
