"""Cost sweeps resize the experiment's cluster along one parameter; each step is a valid
cluster spec, the way a user would have written it."""

from __future__ import annotations

import pytest

from testbed import spec
from testbed.errors import SpecError
from testbed.sweep import step_cluster

from ..conftest import ROOT

SHOP = spec.load_cluster(ROOT / "experiments" / "clusters" / "shop.yaml")


def test_pods_per_service_sets_every_replica_count():
    step = step_cluster(SHOP, "podsPerService", 4)
    assert {s.name: s.replicas for s in step.services} == {"frontend": 4, "cart": 4, "payments": 4}
    assert len(step.pods) == 12 and step.calls == SHOP.calls
    assert {p.node for p in step.pods_of("cart")} == {"n2"}  # placement kept


def test_services_copies_the_spec_services_with_their_callers():
    step = step_cluster(SHOP, "services", 7)
    names = [s.name for s in step.services]
    assert names == ["frontend", "cart", "payments", "x3", "x4", "x5", "x6"]
    x4 = step.service("x4")  # copy of service 4 mod 3 = cart
    assert (x4.service_account, x4.port, x4.nodes) == ("cart", 8080, ("n2",))
    assert set(step.callers_of("x4")) == {"frontend"} and set(step.callers_of("x5")) == {"frontend", "cart"}
    small = step_cluster(SHOP, "services", 2)
    assert [s.name for s in small.services] == ["frontend", "cart"]
    assert [(c.source, c.target) for c in small.calls] == [("frontend", "cart")]


def test_nodes_adds_and_removes_nodes_and_keeps_pins_that_still_exist():
    assert step_cluster(SHOP, "nodes", 5).nodes == ("n1", "n2", "n3", "nx3", "nx4")
    one = step_cluster(SHOP, "nodes", 1)
    assert one.nodes == ("n1",) and one.service("cart").nodes == ()  # n2 is gone: cart spreads over all


def test_a_step_beyond_the_limits_is_refused():
    with pytest.raises(SpecError) as err:
        services = ", ".join(f"{{name: s{i}, port: 80}}" for i in range(6))
        step_cluster(spec.loads_cluster(f"name: c\nnodes: [n1]\nservices: [{services}]\n"), "podsPerService", 50)
    assert "node 'n1' would hold 300 pods" in str(err.value)


def test_the_scope_and_every_setting_survive_the_round_trip():
    text = "name: c\nnodes: [n1]\nservices: [{name: a, port: 80, l7: false}]\nmesh: {scope: calls, concurrency: 2}\n"
    step = step_cluster(spec.loads_cluster(text), "podsPerService", 1)
    assert step.mesh.scope == "calls" and step.mesh.concurrency == 2 and not step.service("a").l7
