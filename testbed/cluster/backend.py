"""The cluster stage's one small interface, and the backends that implement it.

A backend turns a plan (cluster/plan.py) into running nodes and pods. Whatever builds them,
the result is the same: every node and pod is a network namespace named
`/run/netns/tb-<run>-...`, wired with the plan's interface names and addresses, every pod
has its cgroup and its workload agent. So the stages after it (mesh, redirect, faults,
measurements) work on names and never ask which backend built the cluster. The run's state
records the backend (`backend` in state.json) for `testbed cli` and `status`; `down` and
`clean` need no state: one sweep by tag finds what either backend made.

    namespaces   pyroute2 creates the namespaces, veths and bridges (the default)
    mininet      Mininet's Python API (Debian's `mininet`): nodes and pods as Mininet hosts,
                 the fabric and every node's pod bridge as Linux-bridge switches, no
                 controller; `testbed cli` opens Mininet's CLI on it
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ..errors import TestbedError
from ..state import Run
from .plan import ClusterPlan

BACKENDS = ("namespaces", "mininet")
DEFAULT_BACKEND = "namespaces"


class ClusterBackend(Protocol):
    """What the runner, the mesh, the faults and the CLI use of a cluster stage."""

    name: str  # the stage's name ("cluster")
    plan: ClusterPlan
    run: Run
    agents: dict[str, int]  # pod -> its agent's pid, once built

    def build(self, progress: Callable[[str], None]) -> dict[str, float]: ...
    def teardown(self) -> list[str]: ...
    @staticmethod
    def sweep(run_id: str | None) -> list[str]: ...
    def exec(self, pod: str, argv: Sequence[str]) -> int: ...
    def call(self, pod: str, url: str, count: int = 1, timeout: float = 2.0) -> list[dict]: ...
    def add_host(self, name: str, index: int = 0) -> tuple[str, str]: ...


def check_backend(name: str) -> str:
    """`name` if it is a backend this machine can run; a clear error otherwise (before anything
    is built)."""
    if name not in BACKENDS:
        raise TestbedError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    if name == "mininet":
        try:
            import mininet.net  # noqa: F401 - Debian's package, outside the venv's own packages
        except ImportError:
            raise TestbedError("the mininet backend needs Debian's mininet package (`make setup` installs it: "
                               "apt-get install --no-install-recommends mininet)") from None
    return name


def make_cluster(plan: ClusterPlan, run: Run, backend: str = DEFAULT_BACKEND) -> ClusterBackend:
    """The cluster stage of `backend` for this plan (no side effect until `build()`)."""
    check_backend(backend)
    if backend == "mininet":
        from .mininet_backend import MininetCluster

        return MininetCluster(plan, run)
    from .namespaces import NamespaceCluster

    return NamespaceCluster(plan, run)
