"""Spec loading: good specs become the expected pods; every bad spec is rejected with the
file, the line and the field at fault."""

from __future__ import annotations

import pytest

from testbed import spec
from testbed.errors import SpecError

from ..conftest import FIXTURES, ROOT

BAD = FIXTURES / "bad"


def test_shop_places_replicas_round_robin():
    s = spec.load_cluster(ROOT / "experiments" / "clusters" / "shop.yaml")
    assert [(p.name, p.node) for p in s.pods] == [
        ("frontend-0", "n1"), ("frontend-1", "n2"), ("cart-0", "n2"),
        ("payments-0", "n1"), ("payments-1", "n2"), ("payments-2", "n3"),
    ]
    assert s.calls_from("frontend") == ["cart", "payments"]
    assert s.service("cart").service_account == "cart"


def test_uneven_spreads_over_the_services_own_nodes():
    s = spec.load_cluster(FIXTURES / "uneven.yaml")
    assert {p.name: p.node for p in s.pods if p.service != "api"} == {
        "db-0": "n1", "db-1": "n1", "cache-0": "n1", "cache-1": "n2", "cache-2": "n1",
    }
    assert len(s.pods_on("n1")) == 5 and len(s.pods_on("n3")) == 1


def test_defaults_replicas_one_and_service_account_named_after_service():
    s = spec.loads_cluster("name: x\nnodes: [a]\nservices:\n  - {name: web, port: 80}\n")
    assert s.pods[0].name == "web-0" and s.pods[0].service_account == "web" and s.calls == ()


@pytest.mark.parametrize("fixture, line, field, words", [
    ("unknown_field.yaml", 5, "services[1].replcias", "unknown field"),
    ("port_range.yaml", 7, "services[1].port", "70000 is out of range"),
    ("port_type.yaml", 4, "services[0].port", "expected a whole number"),
    ("duplicate_service.yaml", 5, "services[1].name", "duplicate service 'web'"),
    ("unknown_node.yaml", 4, "services[0].nodes[1]", "unknown node 'n7'"),
    ("unknown_call.yaml", 6, "calls[0].to", "unknown service 'cart'"),
    ("duplicate_call.yaml", 8, "calls[1]", "duplicate call web -> cart"),
    ("long_name.yaml", 5, "services[1].name", "would not fit an interface name"),
    ("long_node.yaml", 2, "nodes[1]", "longer than 13 characters"),
    ("missing_port.yaml", 5, "services[1].port", "required field is missing"),
    ("duplicate_key.yaml", 5, "nodes", "duplicate key"),
    ("bad_yaml.yaml", 3, "yaml", "not valid YAML"),
    ("no_nodes.yaml", 2, "nodes", "at least one node"),
    ("bad_name.yaml", 4, "services[0].name", "not a valid service name"),
    ("connect_timeout.yaml", 5, "mesh.connectTimeout", "at least 10ms and at most 60s"),
])
def test_bad_spec_names_file_line_and_field(fixture, line, field, words):
    path = BAD / fixture
    with pytest.raises(SpecError) as err:
        spec.load_cluster(path)
    problems = err.value.problems
    assert any(p.startswith(f"{path}:{line}: {field}") and words in p for p in problems), problems


def test_all_problems_are_reported_at_once():
    text = "name: x\nnodes: [n1]\nservices:\n  - {name: a, port: 0}\n  - {name: b, port: 1, bogus: 2}\n"
    with pytest.raises(SpecError) as err:
        spec.loads_cluster(text, "multi.yaml")
    assert [p.split(":")[1] for p in err.value.problems] == ["4", "5"]


def test_missing_file_is_a_spec_error():
    with pytest.raises(SpecError, match="cannot read"):
        spec.load_cluster(BAD / "does-not-exist.yaml")


def test_too_many_pods_on_one_node():
    text = "name: x\nnodes: [n1]\nservices:\n" + "".join(
        f"  - {{name: s{i}, port: 80, replicas: 200}}\n" for i in range(2))
    with pytest.raises(SpecError, match="would hold 400 pods"):
        spec.loads_cluster(text)
