"""Starting the workload agents of a run. By default the spawner (spawner.py) forks them
from one pre-imported interpreter, in a process of its own, while the testbed wires the
pods' links; with TESTBED_AGENT_SPAWNER=off each is an interpreter of its own, started in
its pod like any other process (procs.spawn), as before the spawner: the benchmark
measures one against the other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .. import naming
from ..errors import TestbedError
from ..state import Run
from . import agentctl, cgroups, netns, procs
from .plan import ClusterPlan, PodPlan

REPO = Path(__file__).resolve().parents[2]
SPAWN_TIMEOUT = 60.0


def spawner_enabled() -> bool:
    return os.environ.get("TESTBED_AGENT_SPAWNER", "on") not in ("off", "0", "")


def agent_args(plan: ClusterPlan, run: Run, pod: PodPlan) -> list[str]:
    return ["--run", plan.run_id, "--pod", pod.name, "--service", pod.service, "--node", pod.node,
            "--port", str(pod.port), "--control", run.agent_socket(pod.name)]


class Started:
    """Agents on their way up: `pids()` waits until each has been started (not until it
    answers: the cluster stage waits for that on the control sockets)."""

    def __init__(self, pids: dict[str, int] | None = None, spawner: subprocess.Popen | None = None,
                 log: str | None = None):
        self._pids, self._spawner, self._log = pids, spawner, log

    def pids(self) -> dict[str, int]:
        if self._pids is None:
            try:
                out, _ = self._spawner.communicate(timeout=SPAWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._spawner.kill()
                self._spawner.wait()
                raise TestbedError(f"the agent spawner did not finish in {SPAWN_TIMEOUT:g}s") from None
            if self._spawner.returncode != 0:
                raise TestbedError(f"the agent spawner failed (exit {self._spawner.returncode}); see {self._log}")
            self._pids = {r["pod"]: r["pid"] for r in map(json.loads, out.splitlines())}
        return self._pids


def start(plan: ClusterPlan, run: Run, pods: list[PodPlan]) -> Started:
    """Start an agent in every pod (their namespaces and cgroups exist; links may not yet)."""
    if not spawner_enabled():
        return Started({pod.name: procs.spawn([sys.executable, "-I", "-S", agentctl.AGENT_SCRIPT,
                                               *agent_args(plan, run, pod)], pod.netns, pod.cgroup,
                                              log=run.log(pod.name)).pid for pod in pods})
    requests = run.dir / "agents.jsonl"
    requests.write_text("".join(json.dumps({
        "pod": pod.name, "netns": netns.path(pod.netns), "log": run.log(pod.name),
        "agent": {"pod": pod.name, "service": pod.service, "node": pod.node, "port": pod.port,
                  "control": run.agent_socket(pod.name)},
        "cgroup_procs": os.path.join(cgroups.path(pod.cgroup), "cgroup.procs")}) + "\n" for pod in pods))
    cgroups.create(naming.spawner_cgroup(plan.run_id))
    log = run.log("spawner")
    with open(log, "ab") as err:
        spawner = procs.spawn([sys.executable, "-m", "testbed.cluster.spawner", "--run", plan.run_id,
                               "--requests", str(requests)], None, naming.spawner_cgroup(plan.run_id),
                              stdout=subprocess.PIPE, stderr=err, cwd=str(REPO), text=True)
    return Started(spawner=spawner, log=log)
