"""The synthetic clusters of the scale benchmark: the sizes the issue names, valid specs."""

from __future__ import annotations

import pytest

from testbed.synthetic import SIZES, flows, scale_spec


@pytest.mark.parametrize("pods", SIZES)
def test_each_size_is_a_valid_cluster_of_that_many_pods(pods):
    nodes, services = SIZES[pods]
    spec = scale_spec(nodes, services, pods)
    assert len(spec.pods) == pods and len(spec.nodes) == nodes and len(spec.services) == services
    assert flows(spec) == (services - 1) * (pods // services)
    per_node = {n: len(spec.pods_on(n)) for n in spec.nodes}
    assert max(per_node.values()) - min(per_node.values()) <= services  # spread round-robin per service


def test_the_issues_flow_counts():
    assert flows(scale_spec(5, 25, 500)) == 480 and flows(scale_spec(4, 20, 200)) == 190


def test_pods_must_split_evenly():
    with pytest.raises(ValueError):
        scale_spec(4, 20, 210)
