"""Fixed-rate load from inside a pod with `hey` (a real generator), one record per request.
It runs in the pod's namespace and cgroup, so redirection applies to it as to the app."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from ..cluster import procs
from ..cluster.plan import PodPlan
from ..errors import TestbedError


@dataclass
class LoadResult:
    latencies_ms: list[float]  # successful requests, after the warm-up
    errors: int
    duration_s: float
    offered_rps: float

    @property
    def throughput_rps(self) -> float:
        return len(self.latencies_ms) / self.duration_s if self.duration_s else 0.0


def hey(pod: PodPlan, url: str, rate: float, seconds: float, warmup: float = 1.0, workers: int = 2,
        keepalive: bool = True, cpus: str | None = None) -> LoadResult:
    """`rate` requests per second in total for `seconds`; requests started in the first
    `warmup` seconds are dropped from the result. `cpus` pins hey (taskset list)."""
    argv = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", f"{rate / workers:g}", "-o", "csv", "-t", "5"]
    if not keepalive:
        argv.append("-disable-keepalive")
    if cpus:
        argv = ["taskset", "-c", cpus] + argv
    r = procs.run(argv + [url], pod.netns, pod.cgroup, timeout=seconds + 60)
    if r.returncode != 0:
        raise TestbedError(f"hey in {pod.name} failed: {r.stderr.strip()[:300]}")
    latencies, errors = [], 0
    for row in csv.DictReader(io.StringIO(r.stdout)):
        if float(row["offset"]) < warmup:
            continue
        if row["status-code"] == "200":
            latencies.append(float(row["response-time"]) * 1000)
        else:
            errors += 1
    return LoadResult(latencies, errors, seconds - warmup, rate)
