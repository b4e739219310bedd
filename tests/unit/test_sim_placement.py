"""The simulation's cluster, proxies and config sizes are the real testbed's: the same
planner, the same topology as make_topology, the same config counts as the rendered
templates give (counted the way measure/cost.py counts Envoy's /config_dump)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from testbed import spec as specmod
from testbed.cluster.plan import make_plan
from testbed.measure.cost import config_counts
from testbed.mesh import render
from testbed.mesh.topology import ARCHITECTURES, has_waypoints, make_topology
from testbed.sim.config import ConfigModel
from testbed.sim.placement import Scale, SimCluster, scaled_spec
from testbed.sim.topology import SimTopology

from ..conftest import FIXTURES, ROOT

SHOP = specmod.load_cluster(ROOT / "experiments" / "clusters" / "shop.yaml")
MESH = specmod.load_cluster(FIXTURES / "mesh.yaml")
BIG = specmod.load_cluster(FIXTURES / "big.yaml")
ARCHS = tuple(a for a in ARCHITECTURES if a != "none")


def _mesh(spec, **settings):
    return replace(spec, mesh=replace(spec.mesh, **settings))


SPECS = {"shop": SHOP, "mesh": MESH, "big": BIG,
         "mesh-calls": _mesh(MESH, scope="calls"),
         "shop-scaled": scaled_spec(SHOP, Scale(nodes=5, pods_per_node=4, services=7)),
         "mesh-accounts": scaled_spec(MESH, Scale(nodes=4, pods_per_node=3, services=9, accounts=3)),
         # the other tunnel: L4 proxies and waypoints configure per-connection mTLS instead of HBONE
         "mesh-tcp": _mesh(MESH, tunnel="tcp"), "shop-tcp": _mesh(SHOP, tunnel="tcp"),
         "mesh-calls-tcp": _mesh(MESH, scope="calls", tunnel="tcp"),
         "accounts-calls-tcp": _mesh(scaled_spec(MESH, Scale(nodes=4, pods_per_node=3, services=9, accounts=3)),
                                     scope="calls", tunnel="tcp"),
         "accounts-calls": _mesh(scaled_spec(MESH, Scale(nodes=4, pods_per_node=3, services=9, accounts=3)),
                                 scope="calls")}


def _dump(bootstrap: dict) -> dict:
    """A rendered bootstrap in the shape of Envoy's /config_dump of it (static resources)."""
    res = bootstrap["static_resources"]
    listeners = res.get("listeners") or []
    routes = []
    for listener in listeners:
        for chain in listener.get("filter_chains", []):
            for f in chain.get("filters", []):
                rc = f.get("typed_config", {}).get("route_config")
                if rc:
                    routes.append({"route_config": rc})
    return {"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "static_listeners": [{"listener": x} for x in listeners]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         "static_clusters": [{"cluster": c} for c in res.get("clusters") or []]},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "static_route_configs": routes}]}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("arch", ARCHS)
def test_proxies_and_config_counts_are_the_real_testbeds(name, arch):
    spec = SPECS[name]
    plan = make_plan(spec, "t00001", proxy_node=has_waypoints(arch))
    real = make_topology(plan, arch)
    sim = SimTopology(SimCluster(spec), arch)
    assert [(p.name, p.role, p.node, p.serves, p.identities, p.account) for p in real.proxies] == \
        [(p.name, p.role, p.node, p.serves, p.identities, p.account) for p in sim.proxies]
    model = ConfigModel(sim.cluster)
    for proxy in real.proxies:
        text = render.render(plan, real, proxy, "/certs")
        counted = config_counts(_dump(yaml.safe_load(text)), len(text))
        del counted["bytes"]
        assert model.counts(sim.by_name[proxy.name]) == counted, proxy.name


def test_scope_calls_narrows_what_a_proxy_knows():
    spec = SPECS["mesh-calls"]
    cluster = SimCluster(spec)
    side = SimTopology(cluster, "sidecar")
    narrow, wide = ConfigModel(cluster), ConfigModel(cluster, scope="all")
    web = side.by_name["sidecar-web-0"]  # web calls api and audit, of 4 services
    assert narrow.counts(web)["clusters"] == 3 and wide.counts(web)["clusters"] == 5
    db = side.by_name["sidecar-db-0"]  # db calls nothing: no outbound listener at all
    assert narrow.counts(db) == {"listeners": 1, "clusters": 1, "endpoints": 1, "routes": 1, "secrets": 1}


def test_the_planner_places_scaled_clusters_evenly_and_keeps_the_specs_names():
    spec = scaled_spec(SHOP, Scale(nodes=500, pods_per_node=30, services=200))
    cluster = SimCluster(spec)
    assert len(cluster.pods) == 15000 and len(spec.services) == 200 and len(cluster.nodes) == 500
    assert {len(p) for p in cluster.pods_by_node.values()} == {30}
    assert {cluster.replicas(s) for s in cluster.services} == {75}
    assert cluster.nodes[:3] == SHOP.nodes and "cart-0" in cluster.pod_by_name
    # each copy of the application calls inside itself, as the original does
    assert cluster.calls_from["frontend-c7"] == ["cart-c7", "payments-c7"]
    assert cluster.calls_from["cart"] == ["payments"]
    assert len(cluster.accounts()) == 200  # the shop has one account per service; so does each copy


def test_accounts_can_be_spread_over_the_services():
    spec = scaled_spec(SHOP, Scale(nodes=10, pods_per_node=6, services=30, accounts=4))
    assert SimCluster(spec).accounts() == ["sa0", "sa1", "sa2", "sa3"]
    node = SimTopology(SimCluster(spec), "node")
    assert all(len(p.identities) <= 4 for p in node.proxies)


def test_nothing_scaled_is_the_spec_itself():
    assert scaled_spec(SHOP, Scale()) is SHOP


def test_path_counts_a_shared_proxy_twice_and_ambient_crosses_the_l7_proxy():
    cluster = SimCluster(MESH)
    node = SimTopology(cluster, "node")
    assert [node.proxies[k].name for k in node.path("api-0", "db-0", "db")] == ["node-n1", "node-n1"]
    amb = SimTopology(cluster, "ambient")
    assert [amb.proxies[k].name for k in amb.path("web-0", "api-1", "api")] == \
        ["micro-web-0", "l7-backend", "micro-api-1"]
    assert [amb.proxies[k].name for k in amb.path("web-0", "audit-0", "audit")] == ["micro-web-0", "micro-audit-0"]
