"""Mininet's CLI on a running cluster (`testbed cli`), so that students use `nodes`, `net`,
`pingall`, `<pod> ip addr`, `<pod> curl ...` as they learned them.

The cluster was built by an earlier command whose Mininet shells have ended; here Mininet is
attached to it again: one shell per node, pod and switch, entering the named namespaces
(mininet_backend.py describes the same topology it built, without creating anything). A
pod's shell runs in the pod's cgroup, so a command typed at a pod behaves like the pod's
app: a call to a service's address is redirected to its proxy. Leaving the CLI ends the
shells and leaves the cluster running. A run built by the namespace backend has the same
names, so the CLI works on it too.
"""

from __future__ import annotations

import sys

from .. import naming
from ..errors import TestbedError
from . import cgroups, netns
from .mininet_backend import add_nodes, wire
from .plan import ClusterPlan


def attached_net(plan: ClusterPlan):
    """A Mininet network object over the running cluster of `plan` (shells started)."""
    from .mininet_nodes import TestbedNet

    missing = [ns for ns in plan.namespaces() if not netns.exists(ns)]
    if missing:
        raise TestbedError(f"run {plan.run_id} is not complete (no namespace {', '.join(missing[:3])}"
                           f"{' ...' if len(missing) > 3 else ''}): `testbed clean --run {plan.run_id}` removes it")
    cgroups.create(naming.shells_cgroup(plan.run_id))  # a run the namespace backend built has none yet
    net = TestbedNet()
    try:
        wire(net, plan, add_nodes(net, plan, create=False), create=False)
    except BaseException:
        net.stop_shells()
        raise
    return net


def run_cli(plan: ClusterPlan, stdin=None) -> None:
    """Mininet's CLI on the cluster, reading commands from `stdin` (a terminal, or a script
    piped in) until `exit` or end of input."""
    from mininet.cli import CLI
    from mininet.log import setLogLevel

    class TestbedCLI(CLI):
        # pod names have dashes: `frontend-0 ip addr` names the node frontend-0
        identchars = CLI.identchars + "-"

    net = attached_net(plan)
    try:
        setLogLevel("output")  # pingall's results and the node commands' output
        TestbedCLI(net, stdin=stdin or sys.stdin)
    finally:
        net.stop_shells()
