"""`testbed export k8s`: what the manifests say (workloads, placement, mesh enrolment, traffic
Jobs), and how the command treats bad input (exit 1, nothing written)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from testbed.cli import main
from testbed.export import bundle, engines
from testbed.mesh import topology

from ..conftest import FIXTURES, ROOT

EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))
CLUSTERS = sorted((ROOT / "experiments" / "clusters").glob("*.yaml")) + [FIXTURES / "mesh.yaml"]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def docs_of(export: bundle.ArchExport, kind: str | None = None) -> list[dict]:
    docs = [d for ds in export.files.values() for d in ds]
    return [d for d in docs if kind is None or d["kind"] == kind]


@pytest.mark.parametrize("source", EXPERIMENTS + CLUSTERS, ids=lambda p: p.name)
def test_every_shipped_spec_exports_in_every_architecture(source):
    b = bundle.build(source, [a for a in engines.EXPORTABLE if source in CLUSTERS
                              or a in bundle.load_source(source)[1].architectures])
    assert b.archs
    for a in b.archs.values():
        assert list(a.files)[0] == "00-namespace.yaml"  # kubectl applies files in name order
        for d in docs_of(a):
            name = d["metadata"]["name"]
            assert DNS_LABEL.match(name) and len(name) <= 63, name
            assert d["kind"] == "Namespace" or d["metadata"]["namespace"] == a.site.namespace
            for key, value in d["metadata"].get("labels", {}).items():
                assert LABEL_VALUE.match(value) and len(value) <= 63, (key, value)


def test_workloads_follow_the_spec():
    b = bundle.build(ROOT / "experiments" / "clusters" / "shop.yaml", ["none"])
    a, spec = b.archs["none"], b.spec
    assert {d["metadata"]["name"] for d in docs_of(a, "ServiceAccount")} == {"web", "cart", "payments"}
    deployments = {d["metadata"]["name"]: d for d in docs_of(a, "Deployment")}
    services = {d["metadata"]["name"]: d for d in docs_of(a, "Service")}
    for svc in spec.services:
        dep, service = deployments[svc.name], services[svc.name]
        pod = dep["spec"]["template"]
        assert dep["spec"]["replicas"] == svc.replicas
        assert pod["spec"]["serviceAccountName"] == svc.service_account
        container = pod["spec"]["containers"][0]
        assert service["spec"]["ports"][0]["port"] == svc.port == container["ports"][0]["containerPort"]
        # the Service and the Deployment select exactly the serving pods
        assert service["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        nodes = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert nodes["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == list(svc.nodes or spec.nodes)
        assert pod["spec"]["topologySpreadConstraints"][0]["maxSkew"] == 1
        assert "--service" in pod["spec"]["containers"][0]["command"]
    config = docs_of(a, "ConfigMap")[0]["data"]
    assert "def run_load(" in config["agent.py"] and "import agent" in config["traffic.py"]
    assert "20-mesh.yaml" not in a.files and "run/30-traffic.yaml" not in a.files  # a cluster spec has no run


def test_traffic_jobs_are_the_flows():
    b = bundle.build(ROOT / "experiments" / "blast-radius.yaml", ["sidecar"])
    a = b.archs["sidecar"]
    jobs = {d["metadata"]["name"]: d for d in docs_of(a, "Job")}
    assert set(jobs) == {"traffic-frontend", "traffic-cart"} == set(a.jobs)
    front = jobs["traffic-frontend"]["spec"]
    assert front["completionMode"] == "Indexed" and front["completions"] == front["parallelism"] == 2
    pod = front["template"]
    assert pod["spec"]["serviceAccountName"] == "web"  # the identity the policy names
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/nativeSidecar": "true"}  # so the Job can end
    cmd = pod["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--rate") + 1] == "20" and cmd[cmd.index("--duration") + 1] == "60"
    assert [cmd[i + 1] for i, c in enumerate(cmd) if c == "--target"] == ["cart=http://cart:8080/",
                                                                        "payments=http://payments:9090/"]
    for service in docs_of(a, "Service"):  # no Service selects the callers
        assert not service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    meta = b.meta()["architectures"]["sidecar"]
    assert sorted(map(tuple, meta["flows"])) == sorted([("frontend-0", "cart"), ("frontend-0", "payments"),
                                                        ("frontend-1", "cart"), ("frontend-1", "payments"),
                                                        ("cart-0", "payments")])


def test_each_architecture_enrols_its_data_plane():
    b = bundle.build(ROOT / "experiments" / "proxy-crash.yaml")
    ns = {a: docs_of(x, "Namespace")[0]["metadata"]["labels"] for a, x in b.archs.items()}
    assert ns["sidecar"]["istio-injection"] == "enabled"
    ambient = [a for a, x in b.archs.items() if x.site.engine == engines.ISTIO_AMBIENT][0]
    assert ns[ambient]["istio.io/dataplane-mode"] == "ambient"
    assert not {"istio-injection", "istio.io/dataplane-mode"} & set(ns["node"])
    sidecar_pod = docs_of(b.archs["sidecar"], "Deployment")[0]["spec"]["template"]
    assert sidecar_pod["metadata"]["annotations"] == {"sidecar.istio.io/nativeSidecar": "false"}  # Chaos Mesh finds it
    kinds = {a: {d["kind"] for d in docs_of(x)} for a, x in b.archs.items()}
    assert {"PeerAuthentication", "AuthorizationPolicy"} <= kinds["sidecar"]
    assert {"PeerAuthentication", "AuthorizationPolicy", "Gateway"} <= kinds[ambient]
    assert "CiliumNetworkPolicy" in kinds["node"] and "AuthorizationPolicy" not in kinds["node"]


def test_ambient_gives_each_account_a_waypoint_its_services_use():
    b = bundle.build(FIXTURES / "mesh.yaml", [a for a, e in engines.ENGINES.items() if e == engines.ISTIO_AMBIENT])
    a = next(iter(b.archs.values()))
    gateways = {d["metadata"]["name"]: d for d in docs_of(a, "Gateway")}
    assert set(gateways) == {"waypoint-web", "waypoint-backend"}  # audit has l7: false: no waypoint
    assert all(g["spec"]["gatewayClassName"] == "istio-waypoint" for g in gateways.values())
    uses = {d["metadata"]["name"]: d["metadata"]["labels"].get("istio.io/use-waypoint") for d in docs_of(a, "Service")}
    assert uses == {"web": "waypoint-web", "api": "waypoint-backend", "db": "waypoint-backend", "audit": None}


def test_mutual_authentication_on_every_cilium_rule():
    a = bundle.build(FIXTURES / "mesh.yaml", ["node"]).archs["node"]
    rules = [r for d in docs_of(a, "CiliumNetworkPolicy") for r in d["spec"]["ingress"] if r]
    assert rules and all(r["authentication"] == {"mode": "required"} for r in rules)
    assert all(r["toPorts"][0]["rules"] == {"http": [{}]} for r in rules)  # through the node's Envoy


def test_strict_mtls_in_both_istio_planes():
    b = bundle.build(ROOT / "experiments" / "blast-radius.yaml")
    for a in b.archs.values():
        if a.site.engine in (engines.ISTIO_SIDECAR, engines.ISTIO_AMBIENT):
            assert docs_of(a, "PeerAuthentication")[0]["spec"] == {"mtls": {"mode": "STRICT"}}


def test_ztunnel_maps_to_istio_ambient_and_the_micro_proxy_has_no_data_plane():
    assert "ztunnel" in topology.ARCHITECTURES and engines.ENGINES["ztunnel"] == engines.ISTIO_AMBIENT
    assert "ambient" in engines.REFUSED and "micro-proxy" in engines.REFUSED["ambient"]


def run_cli(*args):
    return CliRunner().invoke(main, ["export", "k8s", *map(str, args)])


def test_cli_writes_a_directory_per_architecture(tmp_path):
    out = tmp_path / "k8s"
    r = run_cli(ROOT / "experiments" / "blast-radius.yaml", "--out", out)
    assert r.exit_code == 0, r.output
    assert "node-sa: not exported: has no production data plane" in r.output
    assert "fault 1 left out (proxy-hang on pod cart-0): Chaos Mesh cannot stop" in r.output
    for arch in ("sidecar", "node"):
        assert sorted(p.relative_to(out / arch).as_posix() for p in (out / arch).rglob("*.yaml")) == [
            "00-namespace.yaml", "10-workloads.yaml", "20-mesh.yaml", "run/30-traffic.yaml", "run/40-faults.yaml"]
    meta = json.loads((out / "export.json").read_text())
    assert meta["experiment"] == "blast-radius" and meta["traffic"]["rate"] == 20
    assert set(meta["leftOut"]) == {"node-sa", "ambient"}
    kind = (out / "kind.yaml").read_text()
    assert kind.count("role: worker") == 3 and "testbed.io/node: n2" in kind


@pytest.mark.parametrize("args, message", [
    (["--arch", "node-sa"], "has no production data plane"),
    (["--arch", "mesh9"], "unknown architecture 'mesh9'"),
    (["--arch", "none"], "architecture 'none' is not in the experiment"),
])
def test_cli_refuses_bad_architectures_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "k8s"
    r = run_cli(ROOT / "experiments" / "blast-radius.yaml", "--out", out, *args)
    assert r.exit_code == 1 and message in r.output, r.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_refusal_points_to_the_model(tmp_path):
    r = run_cli(ROOT / "experiments" / "blast-radius.yaml", "--out", tmp_path / "x", "--arch", "node-sa")
    assert "testbed simulate" in r.output and "testbed run" in r.output


def test_cli_reports_spec_errors_and_writes_nothing(tmp_path):
    bad = FIXTURES / "bad" / "unknown_call.yaml"
    r = run_cli(bad, "--out", tmp_path / "k8s")
    assert r.exit_code == 1 and f"{bad}:6: calls[0].to: unknown service 'cart'" in r.output
    assert list(tmp_path.iterdir()) == []


def test_cli_never_overwrites_what_it_did_not_write(tmp_path):
    out = tmp_path / "k8s"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    src = ROOT / "experiments" / "proxy-crash.yaml"
    r = run_cli(src, "--out", out)
    assert r.exit_code == 1 and "exists and is not empty" in r.output
    r = run_cli(src, "--out", out, "--force")
    assert r.exit_code == 1 and "does not hold a previous export" in r.output
    assert (out / "notes.txt").read_text() == "mine"


def test_cli_force_replaces_a_previous_export(tmp_path):
    out = tmp_path / "k8s"
    assert run_cli(ROOT / "experiments" / "proxy-crash.yaml", "--out", out).exit_code == 0
    assert run_cli(ROOT / "experiments" / "proxy-crash.yaml", "--out", out, "--arch", "node").exit_code == 1
    r = run_cli(ROOT / "experiments" / "proxy-crash.yaml", "--out", out, "--arch", "node", "--force")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["node"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_namespace_option_is_for_one_architecture(tmp_path):
    src = ROOT / "experiments" / "proxy-crash.yaml"
    r = run_cli(src, "--out", tmp_path / "a", "--namespace", "lab")
    assert r.exit_code == 1 and "export one architecture with it" in r.output
    r = run_cli(src, "--out", tmp_path / "c", "--namespace", "Lab_1", "--arch", "sidecar")
    assert r.exit_code == 1 and "'Lab_1' is not a valid namespace name" in r.output
    r = run_cli(src, "--out", tmp_path / "b", "--namespace", "lab", "--arch", "sidecar")
    assert r.exit_code == 0 and "namespace: lab" in (tmp_path / "b" / "sidecar" / "20-mesh.yaml").read_text()


def test_help_explains_the_mapping():
    r = CliRunner().invoke(main, ["export", "k8s", "--help"])
    assert r.exit_code == 0
    for word in ("Istio sidecars", "Istio ambient", "Cilium", "Chaos Mesh", "testbed collect", "node-sa"):
        assert word in r.output
    assert "collect" in CliRunner().invoke(main, ["--help"]).output


def test_export_needs_no_root_and_touches_no_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl, no node on the way
    r = run_cli(ROOT / "experiments" / "network.yaml", "--out", tmp_path / "k8s")
    assert r.exit_code == 0, r.output
    assert Path(tmp_path / "k8s" / "export.json").exists()
