"""The namespace backend: builds a plan as Linux network namespaces, veths, bridges, cgroups
and workload agents, and tears it down again. Teardown finds the run's objects by their tag,
so it also removes what a build interrupted half-way had created."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from .. import naming
from ..addressing import extra_host_ip
from ..signals import Attempts
from ..state import Run
from ..wait import wait_for
from . import agentctl, agents, cgroups, links, netns, procs
from .plan import ClusterPlan, PodPlan

Progress = Callable[[str], None]
AGENT_READY_TIMEOUT = 10.0


def _quiet(_msg: str) -> None:
    pass


class NamespaceCluster:
    """The cluster stage on this machine. `build()` creates everything in the plan,
    `teardown()` removes everything tagged with the run id; both are safe to call again.
    Service addresses are the redirect stage's (iptables DNAT or eBPF balancing)."""

    name = "cluster"

    def __init__(self, plan: ClusterPlan, run: Run):
        self.plan = plan
        self.run = run
        self.agents: dict[str, int] = {}  # pod -> its agent's pid, once built
        self._started: agents.Started | None = None
        self._agents_from: float | None = None

    # ------------------------------------------------------------------ build
    def build(self, progress: Progress = _quiet) -> dict[str, float]:
        """Create the cluster; returns timings (seconds) of each step."""
        plan = self.plan
        t0 = time.monotonic()
        cgroups.create(plan.cgroup)
        for pod in plan.pods:
            cgroups.create(pod.cgroup)
        self._started = None
        t = self.build_network(progress)

        t1 = time.monotonic()
        if self._started is None:  # a backend that did not start them while it wired the pods
            progress(f"starting {len(plan.pods)} workload agents")
            self._started = agents.start(plan, self.run, list(plan.pods))
        self.agents = self._started.pids()
        self.wait_ready(plan.pods)
        # the namespace backend starts them before the links: then this is what is left
        t["agents_after_links"] = time.monotonic() - t1
        t["agents"] = time.monotonic() - self._agents_from if self._agents_from else t["agents_after_links"]
        t["cluster"] = time.monotonic() - t0
        return t

    def build_network(self, progress: Progress = _quiet) -> dict[str, float]:
        """The namespaces, links, bridges, addresses and routes of the plan (pyroute2). Another
        backend overrides only this: everything after it works on the named namespaces."""
        plan, t = self.plan, {}
        t0 = time.monotonic()
        progress(f"creating {len(plan.namespaces())} namespaces")
        for name in reversed(plan.namespaces()):  # fabric, nodes, pods
            netns.create(name)
        t["namespaces"] = time.monotonic() - t0

        progress(f"starting {len(plan.pods)} workload agents, wiring the fabric, nodes and pods")
        t1 = time.monotonic()
        self._agents_from = t1  # forked in another process while this wires the links
        self._started = agents.start(plan, self.run, list(plan.pods))
        netns.sysctl(plan.fabric_netns, links.FABRIC_SYSCTLS)
        links.build_fabric(plan)
        for node in plan.nodes:
            netns.sysctl(node.netns, links.NODE_SYSCTLS)
            links.build_node(plan, node)
        for pod in plan.pods:
            netns.sysctl(pod.netns, links.POD_SYSCTLS)
            links.build_pod(plan.node(pod.node), pod)
        t["links"] = time.monotonic() - t1
        return t

    def wait_ready(self, pods: Sequence[PodPlan], timeout: float = AGENT_READY_TIMEOUT) -> None:
        pending = {p.name for p in pods}

        def all_answer():
            for name in sorted(pending):
                try:
                    agentctl.ping(self.run.agent_socket(name))
                    pending.discard(name)
                except OSError:
                    pass
            return not pending

        wait_for(all_answer, timeout, lambda: f"workload agents {sorted(pending)} to answer")

    def add_host(self, name: str, index: int = 0) -> tuple[str, str]:
        """Attach an extra host to the fabric (e.g. an attacker): returns (netns, address).
        It is tagged with the run id, so teardown removes it with the rest."""
        ns = naming.host_netns(self.plan.run_id, name)
        ip = extra_host_ip(index)
        netns.create(ns)
        netns.sysctl(ns, links.POD_SYSCTLS)
        links.build_host(self.plan, ns, naming.ifname(naming.HOST_IF_PREFIX, name), ip)
        return ns, ip

    # ------------------------------------------------------------------ use
    def exec(self, pod: str, argv: Sequence[str]) -> int:
        """Run argv inside the pod's namespace and cgroup, attached to this terminal."""
        p = self.plan.pod(pod)
        child = procs.spawn(argv, p.netns, p.cgroup, daemon=False)
        return child.wait()

    def call(self, pod: str, url: str, count: int = 1, timeout: float = 2.0) -> list[dict]:
        """HTTP GETs made by the pod's own client (see agent.py)."""
        return agentctl.call(self.run.agent_socket(pod), url, count, timeout)

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> list[str]:
        return sweep(self.plan.run_id)

    @staticmethod
    def sweep(run_id: str | None) -> list[str]:
        return sweep(run_id)


def sweep(run_id: str | None = None) -> list[str]:
    """Remove every process, namespace and cgroup tagged with the run id (every run when
    None). Needs no state: names carry the tag. Every step is tried even when one fails (all
    failures are raised together at the end), and what another sweep removed meanwhile is
    simply gone. Returns what it removed."""
    prefix = naming.run_prefix(run_id) if run_id else f"{naming.TAG}-"
    cg_prefix = naming.run_cgroup(run_id) if run_id else f"{naming.TAG}-"
    removed: list[str] = []
    spaces = netns.list_tagged(prefix)
    groups = [g for g in cgroups.list_tagged(cg_prefix) if run_id is None or g == cg_prefix]
    with Attempts() as steps:
        # 1. processes: everything in the run's cgroups, then anything else still in its
        #    namespaces, then any worker carrying the run's tag
        for group in groups:
            if steps.attempt(f"stopping the processes of cgroup {group}", cgroups.kill_all, group):
                removed.append(f"the processes in cgroup {group}")
        inodes = {i for i in (netns.inode(s) for s in spaces) if i is not None}
        stray = [pid for pid in procs.in_netns(inodes) if pid != os.getpid()]
        if stray:
            procs.kill(stray)
            steps.attempt("stopping the processes in the run's namespaces", wait_for,
                          lambda: not [p for p in procs.in_netns(inodes) if p != os.getpid()], 5,
                          f"processes {stray} to exit")
            removed.append(f"{len(stray)} processes in the run's namespaces")
        workers = procs.tagged(run_id)  # by their --run tag: also those outside the run's namespaces
        if workers:
            procs.kill(workers)
            removed.append(f"{len(workers)} testbed workers tagged with the run")
        # 2. namespaces (their links, bridges and routes go with them), pods first
        for name in sorted(spaces, key=lambda s: ("-p-" not in s, "-n-" not in s, s)):
            if steps.attempt(f"deleting namespace {name}", netns.delete, name):
                removed.append(f"namespace {name}")
        # 3. cgroups
        for group in groups:
            if steps.attempt(f"removing cgroup {group}", cgroups.remove, group):
                removed.append(f"cgroup {group}")
    return removed
