"""The exported authorization is the local mesh's relation: evaluated from the manifests by
each data plane's rules (testbed/export/authz.py) and from the testbed's own
(`mesh.render.allowed_callers`), every (service account, service) pair must agree, and the
comparison must catch a policy that allows too much or too little."""

from __future__ import annotations

import copy

import pytest

from testbed.export import authz, bundle, engines
from testbed.spec import load_cluster

from ..conftest import FIXTURES, ROOT

SPECS = sorted((ROOT / "experiments" / "clusters").glob("*.yaml")) + [FIXTURES / "mesh.yaml",
                                                                       FIXTURES / "uneven.yaml"]
MESHES = [a for a, e in engines.ENGINES.items() if e != engines.NONE]


def manifests(source, arch) -> list[dict]:
    a = bundle.build(source, [arch]).archs[arch]
    return [d for docs in a.files.values() for d in docs]


def relation(docs, arch, spec):
    accounts = spec.service_accounts() + [authz.STRANGER]
    return authz.exported_relation(docs, engines.ENGINES[arch], spec.mesh.trust_domain, accounts)


@pytest.mark.parametrize("arch", MESHES)
@pytest.mark.parametrize("source", SPECS, ids=lambda p: p.name)
def test_exported_relation_is_the_local_one(source, arch):
    spec = load_cluster(source)
    docs = manifests(source, arch)
    local, exported = authz.local_relation(spec), relation(docs, arch, spec)
    assert exported == local
    assert any(local.values()) and not all(local.values())  # the comparison has both kinds of pair
    assert not any(ok for (sa, _), ok in exported.items() if sa == authz.STRANGER)


def test_the_mesh_fixture_relation_spelled_out():
    """api and db share `backend`: since api may call db, db may call db; audit is L4 only."""
    spec = load_cluster(FIXTURES / "mesh.yaml")
    allowed = {pair for pair, ok in authz.local_relation(spec).items() if ok}
    assert allowed == {("web", "api"), ("backend", "db"), ("web", "audit")}
    for arch in MESHES:
        got = relation(manifests(FIXTURES / "mesh.yaml", arch), arch, spec)
        assert {pair for pair, ok in got.items() if ok} == allowed, arch


def test_plain_workloads_allow_everything():
    spec = load_cluster(FIXTURES / "mesh.yaml")
    got = relation(manifests(FIXTURES / "mesh.yaml", "none"), "none", spec)
    assert all(got.values())


def _policy(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("arch", [a for a, e in engines.ENGINES.items() if e in (engines.ISTIO_SIDECAR,
                                                                                   engines.ISTIO_AMBIENT)])
def test_a_missing_caller_is_caught(arch):
    spec = load_cluster(FIXTURES / "mesh.yaml")
    docs = copy.deepcopy(manifests(FIXTURES / "mesh.yaml", arch))
    _policy(docs, "AuthorizationPolicy", "allow-api")["spec"]["rules"] = []  # web may no longer call api
    assert ("web", "api") in [k for k, ok in relation(docs, arch, spec).items() if not ok]
    assert authz.differences(docs, engines.ENGINES[arch], spec) == [
        "web -> api: the testbed allows, the export denies"]


def test_a_caller_too_many_is_caught():
    spec = load_cluster(FIXTURES / "mesh.yaml")
    docs = copy.deepcopy(manifests(FIXTURES / "mesh.yaml", "node"))
    rule = _policy(docs, "CiliumNetworkPolicy", "allow-db")["spec"]["ingress"][0]
    rule["fromEndpoints"].append({"matchLabels": {engines.CILIUM_SA_LABEL: "web"}})
    assert authz.differences(docs, engines.CILIUM, spec) == ["web -> db: the testbed denies, the export allows"]


def test_a_service_nobody_calls_denies_everyone():
    spec = load_cluster(FIXTURES / "mesh.yaml")  # nobody calls web
    for arch in MESHES:
        got = relation(manifests(FIXTURES / "mesh.yaml", arch), arch, spec)
        assert not any(ok for (_, svc), ok in got.items() if svc == "web"), arch
    cnp = _policy(manifests(FIXTURES / "mesh.yaml", "node"), "CiliumNetworkPolicy", "allow-web")
    assert cnp["spec"]["ingress"] == [{}]  # selected (default deny), no peer allowed


def test_ambient_traffic_must_pass_the_waypoint():
    """The destination's ztunnel admits only its account's waypoint: a policy that forgot it
    would break every call through the waypoint; one that admitted callers directly would
    let them around it."""
    arch = next(a for a, e in engines.ENGINES.items() if e == engines.ISTIO_AMBIENT)
    spec = load_cluster(FIXTURES / "mesh.yaml")
    docs = copy.deepcopy(manifests(FIXTURES / "mesh.yaml", arch))
    via = _policy(docs, "AuthorizationPolicy", "via-waypoint-api")["spec"]
    assert via["rules"][0]["from"][0]["source"]["principals"] == [
        "cluster.local/ns/tb-mesh-" + arch + "/sa/waypoint-backend"]
    via["rules"][0]["from"][0]["source"]["principals"] = ["cluster.local/ns/tb-mesh-" + arch + "/sa/web"]
    assert authz.differences(docs, engines.ISTIO_AMBIENT, spec) == [
        "web -> api: the testbed allows, the export denies"]


def test_the_evaluator_refuses_what_it_does_not_model():
    spec = load_cluster(FIXTURES / "mesh.yaml")
    docs = copy.deepcopy(manifests(FIXTURES / "mesh.yaml", "sidecar"))
    _policy(docs, "AuthorizationPolicy", "allow-api")["spec"]["rules"][0]["to"] = [
        {"operation": {"methods": ["GET"]}}]
    with pytest.raises(NotImplementedError):
        relation(docs, "sidecar", spec)


def test_export_refuses_a_policy_that_differs(monkeypatch):
    from testbed.errors import TestbedError
    from testbed.export import istio

    monkeypatch.setattr(istio, "callers", lambda site, service: [])
    with pytest.raises(TestbedError, match="authorization differs from the testbed's: backend -> db"):
        bundle.build(FIXTURES / "mesh.yaml", ["sidecar"])
