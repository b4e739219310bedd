"""Every role's rendered config passes `envoy --mode validate` (real Envoy, no root needed)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from testbed import identity, spec
from testbed.cluster.plan import make_plan
from testbed.errors import SpecError
from testbed.mesh import envoy, render
from testbed.mesh.topology import ARCHITECTURES, has_waypoints, make_topology
from testbed.spec import TUNNELS

from ..conftest import FIXTURES

ROLES = [("sidecar", "sidecar", "hbone"), ("node", "node", "hbone"), ("node-sa", "node-sa", "hbone")] + [
    (arch, role, tunnel) for arch, role in (("ambient", "micro"), ("ambient", "l7"), ("ztunnel", "ztunnel"),
                                            ("ztunnel", "l7")) for tunnel in TUNNELS]


def load(tmp_path, tunnel: str = "hbone") -> spec.ClusterSpec:
    path = tmp_path / "mesh.yaml"
    path.write_text((FIXTURES / "mesh.yaml").read_text() + f"mesh: {{tunnel: {tunnel}}}\n")
    return spec.load_cluster(path)


@pytest.mark.parametrize("arch, role, tunnel", ROLES)
def test_role_config_validates(arch, role, tunnel, tmp_path):
    s = load(tmp_path, tunnel)
    plan = make_plan(s, "v1", proxy_node=has_waypoints(arch))
    topo = make_topology(plan, arch)
    certs = tmp_path / "certs"
    identity.issue(certs, s.mesh.trust_domain, topo.identities())
    proxies = [p for p in topo.proxies if p.role == role]
    assert proxies
    for proxy in proxies[:2]:
        cfg = tmp_path / f"{proxy.name}.json"
        cfg.write_text(render.render(plan, topo, proxy, str(certs)))
        r = subprocess.run([envoy.envoy_path(), "--mode", "validate", "-c", str(cfg), "-l", "error"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr


def test_rbac_allows_exactly_the_callers_accounts(tmp_path):
    s = spec.load_cluster(FIXTURES / "mesh.yaml")
    plan = make_plan(s, "v1")
    topo = make_topology(plan, "sidecar")
    cfg = yaml.safe_load(render.render(plan, topo, topo.proxy("sidecar-db-0"), "/certs"))
    inbound = next(lst for lst in cfg["static_resources"]["listeners"] if lst["name"] == "inbound")
    http = inbound["filter_chains"][0]["filters"][0]["typed_config"]
    rbac = http["http_filters"][0]["typed_config"]["rules"]
    principals = [p["authenticated"]["principal_name"]["exact"] for p in rbac["policies"]["callers"]["principals"]]
    assert principals == ["spiffe://cluster.local/ns/default/sa/backend"]  # api calls db; api runs as backend


def test_a_service_nobody_calls_denies_everyone():
    s = spec.load_cluster(FIXTURES / "mesh.yaml")
    plan = make_plan(s, "v1")
    topo = make_topology(plan, "sidecar")
    cfg = yaml.safe_load(render.render(plan, topo, topo.proxy("sidecar-web-0"), "/certs"))
    inbound = next(lst for lst in cfg["static_resources"]["listeners"] if lst["name"] == "inbound")
    rbac = inbound["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]["rules"]
    assert rbac == {"action": "ALLOW", "policies": {}}


@pytest.mark.parametrize("arch, role, tunnel", [("sidecar", "sidecar", "hbone"), ("node", "node", "hbone"),
                                                ("ambient", "l7", "tcp"), ("ztunnel", "l7", "hbone")])
def test_config_with_a_wasm_extension_validates(arch, role, tunnel, tmp_path):
    """The chaos stage's bad extension, built from its WAT, in each role that runs extensions."""
    from testbed.chaos.wasm_fault import build

    s = load(tmp_path, tunnel)
    plan = make_plan(s, "v1", proxy_node=has_waypoints(arch))
    topo = make_topology(plan, arch)
    certs = tmp_path / "certs"
    identity.issue(certs, s.mesh.trust_domain, topo.identities())
    wasm = build(tmp_path)
    proxy = next(p for p in topo.proxies if p.role == role and "db-0" in p.serves)
    ext = {"db": {"file": str(wasm), "config": "l", "policy": "FAIL_CLOSED", "vm_id": "tb-db"}}
    cfg = tmp_path / "envoy.json"
    cfg.write_text(render.render(plan, topo, proxy, str(certs), wasm=ext))
    assert "envoy.filters.http.wasm" in cfg.read_text()
    r = subprocess.run([envoy.envoy_path(), "--mode", "validate", "-c", str(cfg), "-l", "error"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("setting, expected", [("", "5s"), (", connectTimeout: 250ms", "0.25s")])
def test_every_cluster_connects_within_the_specs_timeout(tmp_path, setting, expected):
    path = tmp_path / "c.yaml"
    path.write_text((FIXTURES / "mesh.yaml").read_text() + f"mesh: {{trustDomain: cluster.local{setting}}}\n")
    s = spec.load_cluster(path)
    plan = make_plan(s, "v1", proxy_node=True)
    for arch in ARCHITECTURES[1:]:
        topo = make_topology(plan, arch)
        for proxy in topo.proxies:
            clusters = yaml.safe_load(render.render(plan, topo, proxy, "/certs"))["static_resources"]["clusters"]
            assert {c["connect_timeout"] for c in clusters} == {expected}, proxy.name


@pytest.mark.parametrize("arch", ["sidecar", "ambient"])
def test_stats_istio_keeps_only_istios_prefixes_and_all_keeps_every_stat(arch, tmp_path):
    """mesh.stats: the default renders Istio's inclusion list (prefixes ending in '.', which
    Envoy matches without building each stat's name); `all` renders no matcher. Both pass
    Envoy's own validation."""
    plan_of = {}
    for setting in ("", "mesh: {stats: all}\n"):
        path = tmp_path / "s.yaml"
        path.write_text((FIXTURES / "mesh.yaml").read_text() + setting)
        plan_of[setting] = make_plan(spec.load_cluster(path), "v1", proxy_node=has_waypoints(arch))
    certs = tmp_path / "certs"
    for setting, plan in plan_of.items():
        topo = make_topology(plan, arch)
        identity.issue(certs / setting.strip()[:5], plan.spec.mesh.trust_domain, topo.identities())
        for proxy in {p.role: p for p in topo.proxies}.values():  # one of each role
            text = render.render(plan, topo, proxy, str(certs / setting.strip()[:5]))
            stats = yaml.safe_load(text)["stats_config"]
            if setting:
                assert "stats_matcher" not in stats, proxy.name
            else:
                patterns = stats["stats_matcher"]["inclusion_list"]["patterns"]
                assert {p["prefix"] for p in patterns} == {"server.", "cluster_manager.", "listener_manager.",
                                                           "wasm."}, proxy.name
            cfg = tmp_path / f"{proxy.name}.json"
            cfg.write_text(text)
            r = subprocess.run([envoy.envoy_path(), "--mode", "validate", "-c", str(cfg), "-l", "error"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("text, problem", [
    ("mesh: {stats: none}", "mesh.stats: 'none' is not a stats setting (istio, all)"),
    ("mesh: {stats: [all]}", "mesh.stats: a list is not a stats setting (istio, all)"),
])
def test_a_bad_stats_setting_is_refused_with_its_line(text, problem):
    source = (FIXTURES / "mesh.yaml").read_text() + text + "\n"
    with pytest.raises(SpecError) as err:
        spec.loads_cluster(source, "c.yaml")
    assert f"c.yaml:{source.count(chr(10))}: {problem}" in str(err.value)
    assert spec.loads_cluster(source.replace(text, "mesh: {stats: all}")).mesh.stats == "all"
    assert spec.loads_cluster((FIXTURES / "mesh.yaml").read_text()).mesh.stats == "istio"
    again = spec.loads_cluster(spec.to_yaml(spec.loads_cluster(source.replace(text, "mesh: {stats: all}"))))
    assert again.mesh.stats == "all"


def test_the_readiness_answer_is_read_whole_from_a_chunked_body():
    """The supervisor's bare-socket /ready reads Envoy's chunked answer (HTTP/1.1)."""
    from testbed.mesh.admin import _dechunk

    assert _dechunk(b"5\r\nLIVE\n\r\n0\r\n\r\n") == b"LIVE\n"
    assert _dechunk(b"2\r\nLI\r\n3\r\nVE\n\r\n0\r\n\r\n") == b"LIVE\n"
    assert _dechunk(b"zz\r\nLIVE") == b""  # not chunked after all: not LIVE
