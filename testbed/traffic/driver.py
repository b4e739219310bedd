"""Steady traffic on every flow: each pod's agent sends open-loop requests to every service
its service calls (and, optionally, keeps one long-lived connection per flow). The agents
append their records to files under `out` as they go, so a run cut short keeps what was
measured: `read()` takes whatever is there, finished or not."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..cluster import agentctl
from ..cluster.plan import ClusterPlan
from ..wait import wait_for
from .matrix import edges

START_LEAD = 0.5  # seconds between asking the agents to start and the common start time...
LEAD_PER_AGENT = 0.03  # ... plus this per agent asked (hundreds of agents on a busy machine take seconds)
STREAM_INTERVAL = 0.2  # seconds between requests on each flow's long-lived connection


def flows(plan: ClusterPlan) -> list[tuple[str, str]]:
    """(source pod, destination service) for every flow the traffic drives."""
    return edges(plan)


@dataclass
class Traffic:
    """What `start` set going: when it starts (epoch), for how long, and where each agent
    writes (file -> "requests" or "streams")."""

    start: float
    seconds: float
    dir: Path
    files: dict[str, str] = field(default_factory=dict)

    def done(self) -> bool:
        return all(os.path.exists(path + ".done") for path in self.files)

    def wait(self, grace: float = 30.0) -> None:
        """Until every agent has finished (the last requests may take their timeout)."""
        remaining = self.start + self.seconds - time.time()
        wait_for(self.done, max(remaining, 0) + grace, "the traffic to finish", interval=0.1)

    def read(self) -> dict[str, list[dict]]:
        """Every record written so far, by kind, in time order, with `t` in seconds since the
        start (a line cut by a kill mid-write is skipped)."""
        out: dict[str, list[dict]] = {"requests": [], "streams": []}
        for path, kind in self.files.items():
            try:
                with open(path) as f:
                    lines = f.readlines()
            except FileNotFoundError:
                continue
            for line in lines:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                r["t"] = round(r["t"] - self.start, 4)
                out[kind].append(r)
        for records in out.values():
            records.sort(key=lambda r: r["t"])
        return out

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def start(cluster, rate: float, seconds: float, out: Path, streams: bool = False,
          interval: float = STREAM_INTERVAL) -> Traffic:
    """Start open-loop traffic on every flow at `rate` requests/s each, and with `streams`
    one long-lived connection per flow too. `out`: a directory of the caller's (outside the
    run's state, which teardown deletes)."""
    plan, run = cluster.plan, cluster.run
    out.mkdir(parents=True, exist_ok=True)
    callers = [p for p in plan.pods if plan.spec.calls_from(p.service)]
    lead = START_LEAD + LEAD_PER_AGENT * len(callers) * (2 if streams else 1)
    traffic = Traffic(time.time() + lead, seconds, out)
    for pod in plan.pods:
        targets = [{"service": s, "url": f"http://{plan.service(s).vip}:{plan.service(s).port}/"}
                   for s in plan.spec.calls_from(pod.service)]
        if not targets:
            continue
        path = str(out / f"{pod.name}.jsonl")
        traffic.files[path] = "requests"
        agentctl.request(run.agent_socket(pod.name), {"op": "load", "targets": targets, "rate": rate,
                                                      "duration": seconds, "start": traffic.start, "out": path})
        if streams:
            path = str(out / f"{pod.name}-streams.jsonl")
            traffic.files[path] = "streams"
            agentctl.request(run.agent_socket(pod.name), {"op": "streams", "targets": targets, "duration": seconds,
                                                          "interval": interval, "start": traffic.start, "out": path})
    return traffic
