"""The plan: names and addresses derived from spec and run id."""

from __future__ import annotations

import ipaddress

import pytest

from testbed import naming, spec
from testbed.cluster.plan import CLUSTER_NET, make_plan
from testbed.errors import TestbedError

from ..conftest import FIXTURES


@pytest.fixture
def plan():
    return make_plan(spec.load_cluster(FIXTURES / "uneven.yaml"), "abc123")


def test_every_address_is_unique_and_in_the_benchmarking_range(plan):
    addrs = [n.fabric_ip for n in plan.nodes] + [n.gateway for n in plan.nodes] + \
        [p.ip for p in plan.pods] + [s.vip for s in plan.services]
    assert len(addrs) == len(set(addrs))
    assert all(ipaddress.ip_address(a) in CLUSTER_NET for a in addrs)


def test_pods_sit_in_their_nodes_subnet(plan):
    for pod in plan.pods:
        assert ipaddress.ip_address(pod.ip) in ipaddress.ip_network(plan.node(pod.node).pod_cidr)


def test_every_name_carries_the_run_id_and_fits(plan):
    for ns in plan.namespaces():
        assert naming.run_id_of(ns) == "abc123"
    assert plan.cgroup == "tb-abc123" and all(p.cgroup.startswith("tb-abc123/") for p in plan.pods)
    assert all(len(p.host_if) <= naming.IFNAMSIZ for p in plan.pods)


def test_services_list_their_pods(plan):
    assert plan.service("cache").pods == ("cache-0", "cache-1", "cache-2")


def test_bad_run_id_is_refused():
    with pytest.raises(TestbedError, match="run id"):
        make_plan(spec.load_cluster(FIXTURES / "uneven.yaml"), "Bad_Id")
