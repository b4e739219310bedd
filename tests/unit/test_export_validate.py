"""Every exported manifest of every shipped experiment and cluster, in every exportable
architecture, is valid offline: core kinds by kubernetes-validate (strict, Kubernetes
KUBERNETES_VERSION), Istio, Gateway API and Cilium kinds by their published schemas (the npm
packages `make setup` installs). And the validators do reject broken manifests."""

from __future__ import annotations

import copy
import functools

import pytest

from testbed.export import bundle, engines, validate

from ..conftest import FIXTURES, ROOT

SOURCES = sorted((ROOT / "experiments").glob("*.yaml")) + sorted((ROOT / "experiments" / "clusters").glob("*.yaml")) \
    + [FIXTURES / "mesh.yaml"]


@functools.cache
def exported(source) -> dict[str, list[dict]]:
    _, exp, _ = bundle.load_source(source)
    archs = [a for a in (exp.architectures if exp else engines.EXPORTABLE) if a in engines.ENGINES]
    b = bundle.build(source, archs)
    return {arch: [d for docs in a.files.values() for d in docs] for arch, a in b.archs.items()}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_every_exported_core_manifest_is_valid(source):
    for arch, docs in exported(source).items():
        assert validate.core_problems([d for d in docs if d["apiVersion"] in validate.CORE_API_VERSIONS]) == [], arch
        kinds = {d["kind"] for d in docs}
        assert {"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service"} <= kinds
        known = validate.CORE_API_VERSIONS | validate.SCHEMA_API_VERSIONS | validate.FIELD_TESTED_API_VERSIONS
        assert {d["apiVersion"] for d in docs} <= known


def test_every_exported_custom_resource_is_valid():
    """All of them in one run of the schema validators (node starts once)."""
    docs = [d for source in SOURCES for arch_docs in exported(source).values() for d in arch_docs
            if d["apiVersion"] in validate.SCHEMA_API_VERSIONS]  # problems name their namespace: experiment, arch
    assert len(docs) > 50
    assert validate.schema_problems(docs) == []


def test_every_engine_and_kind_was_validated():
    """The shipped specs, all together, exercise every kind the export writes."""
    seen = {(d["apiVersion"], d["kind"]) for s in SOURCES for docs in exported(s).values() for d in docs}
    assert {("security.istio.io/v1", "AuthorizationPolicy"), ("security.istio.io/v1", "PeerAuthentication"),
            ("gateway.networking.k8s.io/v1", "Gateway"), ("cilium.io/v2", "CiliumNetworkPolicy"),
            ("batch/v1", "Job"), ("apps/v1", "Deployment"), ("chaos-mesh.org/v1alpha1", "Workflow")} <= seen


def _one(docs, kind, **where):
    return copy.deepcopy(next(d for d in docs if d["kind"] == kind
                              and all(d["metadata"].get(k) == v for k, v in where.items())))


def _ambient():
    return next(a for a, e in engines.ENGINES.items() if e == engines.ISTIO_AMBIENT)


def test_core_kinds_are_checked_strictly():
    docs = exported(ROOT / "experiments" / "blast-radius.yaml")["sidecar"]
    dep, svc, job = _one(docs, "Deployment"), _one(docs, "Service"), _one(docs, "Job")
    dep["spec"]["replica"] = 2  # a typo: strict mode rejects unknown fields
    svc["spec"]["ports"][0]["port"] = "8080x"
    del job["spec"]["template"]["spec"]["containers"][0]["name"]
    problems = [p.replace(" in tb-blast-radius-sidecar", "") for p in validate.core_problems([dep, svc, job])]
    assert len(problems) == 3
    assert "Deployment/frontend: spec: Additional properties are not allowed ('replica' was unexpected)" in problems
    assert any(p.startswith("Service/frontend: spec.ports.0.port:") for p in problems)
    assert any(p.startswith("Job/traffic-frontend:") and "'name' is a required property" in p for p in problems)


def test_custom_resources_are_checked_against_their_published_schemas():
    ambient = exported(ROOT / "experiments" / "blast-radius.yaml")[_ambient()]
    node = exported(ROOT / "experiments" / "blast-radius.yaml")["node"]
    ap = _one(ambient, "AuthorizationPolicy", name="allow-cart")
    ap["spec"]["action"] = "PERMIT"  # not an action
    typo = _one(ambient, "AuthorizationPolicy", name="allow-payments")
    source = typo["spec"]["rules"][0]["from"][0]["source"]
    source["principalz"] = source.pop("principals")  # a field the schema does not know
    gw = _one(ambient, "Gateway")
    del gw["spec"]["listeners"][0]["protocol"]
    pa = _one(ambient, "PeerAuthentication")
    pa["spec"]["mtls"]["mode"] = "STRICTEST"
    cnp = _one(node, "CiliumNetworkPolicy", name="allow-cart")
    cnp["spec"]["ingress"][0]["authentication"]["mode"] = "mandatory"
    problems = [p.replace(" in tb-blast-radius-" + _ambient(), "").replace(" in tb-blast-radius-node", "")
                for p in validate.schema_problems([ap, typo, gw, pa, cnp])]
    assert problems == [
        "AuthorizationPolicy/allow-cart: data/spec/action must be equal to one of the allowed values",
        "AuthorizationPolicy/allow-payments: spec.rules.0.from.0.source.principalz: not a field of the "
        "published schema",
        "Gateway/waypoint-cart: data/spec/listeners/0 must have required property protocol",
        "PeerAuthentication/default: data/spec/mtls/mode must be equal to one of the allowed values",
        "CiliumNetworkPolicy/allow-cart: data/spec/ingress/0/authentication/mode must be equal to one of the "
        "allowed values",
    ]


def test_an_unknown_kind_has_no_validator():
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "lab"}}
    assert validate.problems([widget]) == ["Widget/w in lab: no validator for apiVersion 'example.com/v1'"]


def test_missing_schema_validators_are_an_error_not_a_pass(tmp_path, monkeypatch):
    monkeypatch.setenv(validate.VALIDATORS_ENV, str(tmp_path))
    docs = exported(ROOT / "experiments" / "blast-radius.yaml")["sidecar"]
    with pytest.raises(validate.ValidatorsMissing, match="make setup"):
        validate.problems(docs)


def test_the_pinned_kubernetes_version_is_bundled():
    """kubernetes-validate silently falls back to an older release it has: ours must be there."""
    import kubernetes_validate

    assert validate.KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()
