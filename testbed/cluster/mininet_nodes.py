"""Mininet's node, switch and link classes, fitted to the testbed (Debian's `mininet`, no
Open vSwitch, no controller).

Mininet runs one shell per node and sends it commands; a host's shell lives in a network
namespace that Mininet creates (`mnexec -n`) and leaves unnamed. Here every shell belongs to
one of the run's named namespaces, `/run/netns/tb-<run>-...`, so that the mesh, the BPF
programs, the faults and the captures find it by name as they do on the default backend:

- `create=True` (building): Mininet makes the namespace, then it is bind-mounted at its name
  (what `ip netns attach` does); it outlives the shell, like the namespace backend's.
- `create=False` (a node's pod bridge, which shares the node's namespace; `testbed cli`
  re-attaching to a cluster built earlier): the shell enters the named namespace.

Every shell also starts in a cgroup of the run (a pod's own, so that `<pod> curl VIP` in
Mininet's CLI passes the pod's BPF redirection like the app's calls; the others in
`tb-<run>/mininet`) and carries `--run ID` on its command line: the run's sweep finds and
stops it by either, with no help from `mn -c`.
"""

from __future__ import annotations

import os

from mininet.link import Intf, Link
from mininet.net import Mininet
from mininet.node import Host
from mininet.nodelib import LinuxBridge
from pyroute2 import netns as pr_netns

from ..errors import TestbedError
from . import cgroups, netns, procs
from .plan import BRIDGE


class TestbedNet(Mininet):
    """A Mininet network without Mininet's start-up tuning: `Mininet.init()` raises rlimits and
    root-namespace sysctls (socket buffers, ARP cache, fs.file-max) for large emulations, and
    the testbed leaves the root namespace alone."""

    __test__ = False  # not a pytest test class, despite the name
    inited = True

    def __init__(self):
        super().__init__(topo=None, build=False, controller=None, host=TestbedHost, switch=Bridge,
                         inNamespace=False, waitConnected=False)

    def shells(self) -> list:
        return list(self.hosts) + list(self.switches)

    def stop_shells(self) -> None:
        """End every node's shell. The cluster stays: its namespaces are named, its bridges and
        links belong to them (unlike `Mininet.stop()`, nothing is deleted)."""
        for node in self.shells():
            if node.shell is not None:
                node.terminate()


class InNamedNetns:
    """A Mininet node whose shell runs in a named namespace of the run, in one of its cgroups."""

    def __init__(self, name, netns_name: str, cgroup: str, run_id: str, create: bool = False, **params):
        self.netns_name, self.cgroup_rel, self.run_tag, self.create_netns = netns_name, cgroup, run_id, create
        params.pop("inNamespace", None)
        super().__init__(name, inNamespace=True, **params)

    def startShell(self, mnopts=None):  # noqa: N802 - Mininet's naming
        # Mininet waits for its shell's prompt with no timeout: a shell that cannot start
        # (no cgroup to join, no namespace to enter) would hang it, so check first
        if not os.path.isdir(cgroups.path(self.cgroup_rel)):
            raise TestbedError(f"Mininet node {self.name}: no cgroup {self.cgroup_rel} to start its shell in")
        if not self.create_netns and not netns.exists(self.netns_name):
            raise TestbedError(f"Mininet node {self.name}: no namespace {self.netns_name} to enter")
        if not self.create_netns:
            self.inNamespace = False  # no `mnexec -n`: the shell enters the named namespace (_popen)
            try:
                return super().startShell(mnopts)
            finally:
                self.inNamespace = True
        if netns.exists(self.netns_name):
            raise TestbedError(f"network namespace {self.netns_name} already exists (is another run using this id? "
                               "see `testbed status` or `testbed clean`)")
        super().startShell(mnopts)
        pr_netns.attach(self.netns_name, self.pid)  # named from its first command on
        return None

    def _popen(self, cmd, **params):
        """Every process Mininet starts for this node (its shell, `popen`): in the node's cgroup,
        in its named namespace once that exists, the shell tagged with the run id."""
        cmd = list(cmd)
        if self.shell is None:
            cmd += ["--run", self.run_tag]  # bash -s: extra words are positional parameters
        enter = None if self.create_netns else self.netns_name
        return super()._popen(procs.wrap(cmd, enter, self.cgroup_rel), **params)

    def stop(self, deleteIntfs=False):  # noqa: N803 - Mininet's naming
        """Only the shell: the devices belong to the namespace, which the run's teardown removes."""
        self.terminate()


class TestbedHost(InNamedNetns, Host):
    """A node or a pod."""


class Bridge(InNamedNetns, LinuxBridge):
    """A Linux bridge named br0 in its namespace: the fabric (a namespace of its own) or a
    node's pod bridge (in the node's namespace, whose gateway address it carries). Made with
    `ip link`, so `brctl` is not needed; it needs no controller."""

    @classmethod
    def setup(cls):
        """LinuxBridge's checks are for bridges in the root namespace (brctl, bridge-nf-call
        warnings); ours live in the run's namespaces, where bridge-nf-call-iptables is off."""

    def connected(self):
        return True

    def start(self, _controllers):
        checked(self, f"ip link add {BRIDGE} type bridge && ip link set {BRIDGE} up")
        for intf in self.intfList():
            if intf.name not in ("lo", BRIDGE):
                checked(self, f"ip link set {intf.name} master {BRIDGE} up")


class ExistingIntf(Intf):
    """An interface of a cluster built earlier: recorded (name, node, address), never touched."""

    def config(self, **_params):
        return {}


class ExistingLink(Link):
    """A veth of a cluster built earlier: Mininet knows it (`net`, `links`); nothing is created
    and nothing is deleted."""

    @classmethod
    def makeIntfPair(cls, *_args, **_kwargs):  # noqa: N802 - Mininet's naming
        return None

    def delete(self):
        pass

    def stop(self):
        pass


def checked(node, command: str) -> str:
    """Run a shell command on a Mininet node; its output, or an error naming the node, the
    command and what it said."""
    out = node.cmd(f"{command}; echo __rc=$?")
    text, _, code = out.rpartition("__rc=")
    if code.strip() != "0":
        raise TestbedError(f"Mininet node {node.name}: `{command}` failed ({code.strip()}): {text.strip()}")
    return text
