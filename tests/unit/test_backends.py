"""Backends without root: chosen by name, refused clearly when unknown or not installed, and
both expose the one interface the rest of the code uses."""

from __future__ import annotations

import sys

import pytest

from testbed import runner
from testbed.checker import NAME_RE
from testbed.cluster.backend import BACKENDS, ClusterBackend, check_backend, make_cluster
from testbed.cluster.mininet_backend import FABRIC_SWITCH, MininetCluster, bridge_name
from testbed.cluster.namespaces import NamespaceCluster
from testbed.cluster.plan import make_plan
from testbed.errors import TestbedError
from testbed.spec import load_cluster
from testbed.state import Run

from ..conftest import FIXTURES


def test_an_unknown_backend_is_refused_naming_the_known_ones():
    with pytest.raises(TestbedError, match=r"unknown backend 'ovs' \(choose from namespaces, mininet\)"):
        check_backend("ovs")


def test_mininet_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mininet.net", None)  # `import mininet.net` now fails
    with pytest.raises(TestbedError, match=r"Debian's mininet package \(`make setup` installs it"):
        check_backend("mininet")


def test_the_runner_builds_the_cluster_with_the_backend_it_is_given():
    pytest.importorskip("mininet.net")
    plan = make_plan(load_cluster(FIXTURES / "uneven.yaml"), "t1")
    for backend, cls in (("namespaces", NamespaceCluster), ("mininet", MininetCluster)):
        cluster = runner.stages(plan, Run("t1"), "none", "iptables", backend)[0]
        assert type(cluster) is cls and cluster.plan is plan and cluster.agents == {}
        assert type(make_cluster(plan, Run("t1"), backend)) is cls


@pytest.mark.parametrize("cls", [NamespaceCluster, MininetCluster])
def test_every_backend_has_the_one_interface(cls):
    for member in ("build", "teardown", "sweep", "exec", "call", "add_host"):
        assert callable(getattr(cls, member)), member
    assert cls.name == "cluster" and isinstance(cls.__dict__.get("sweep", NamespaceCluster.__dict__["sweep"]),
                                                 staticmethod)
    assert set(BACKENDS) == {"namespaces", "mininet"} and ClusterBackend.__doc__


def test_mininet_switch_names_never_collide_with_a_node_or_a_pod():
    for name in (FABRIC_SWITCH, bridge_name("n1")):
        assert not NAME_RE.match(name), name  # no spec name can hold an underscore
