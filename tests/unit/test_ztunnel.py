"""ztunnel and HBONE without root: placement and keys, the rendered policy (the waypoint alone
past an L4 proxy, each source pod's own identity), the spec switch and fault targets, and
the HBONE client's reading of answers."""

from __future__ import annotations

import struct

import pytest
import yaml

from testbed import spec
from testbed.cluster.plan import make_plan
from testbed.errors import SpecError
from testbed.experiment import parse_experiment
from testbed.mesh import dial, render
from testbed.mesh.entry import doors, entry_point, pod_door
from testbed.mesh.topology import limits, make_topology, path, waypoint_identity
from testbed.yamlsrc import loads

from ..conftest import FIXTURES

TD = "spiffe://cluster.local/ns/default/sa/"


def mesh(tunnel: str = "hbone") -> spec.ClusterSpec:
    return spec.loads_cluster((FIXTURES / "mesh.yaml").read_text() + f"mesh: {{tunnel: {tunnel}}}\n")


def config(arch: str, proxy: str, tunnel: str = "hbone") -> tuple[dict, object, object]:
    plan = make_plan(mesh(tunnel), "u1", proxy_node=True)
    topo = make_topology(plan, arch)
    return yaml.safe_load(render.render(plan, topo, topo.proxy(proxy), "/certs")), plan, topo


def listener(cfg: dict, name: str) -> dict:
    return next(x for x in cfg["static_resources"]["listeners"] if x["name"] == name)


def test_one_ztunnel_per_node_holds_every_local_account_and_waypoints_their_own():
    plan = make_plan(mesh(), "u1", proxy_node=True)
    topo = make_topology(plan, "ztunnel")
    assert [(p.name, p.identities, p.hbone_port) for p in topo.proxies if p.role == "ztunnel"] == [
        ("ztunnel-n1", ("backend", "web"), 15008), ("ztunnel-n2", ("audit", "web"), 15008),
        ("ztunnel-n3", ("backend",), 15008)]
    waypoints = {p.account: p for p in topo.proxies if p.role == "l7"}
    assert set(waypoints) == {"backend", "web"}  # audit has l7: false
    assert waypoints["backend"].identities == (waypoint_identity("backend"),) == ("waypoint-backend",)
    assert topo.serving("db-0").name == "ztunnel-n1" and topo.l7_for("backend").name == "l7-backend"
    assert path(plan, topo, "web-0", "api") == ["ztunnel", "l7", "ztunnel"]
    assert path(plan, topo, "web-0", "audit") == ["ztunnel", "ztunnel"]
    assert limits(plan.spec, "ztunnel") == []


def test_an_l4_proxy_admits_the_waypoint_alone_for_pods_behind_it():
    for arch, proxy in (("ztunnel", "ztunnel-n1"), ("ambient", "micro-db-0")):
        cfg, plan, _ = config(arch, proxy)
        chains = {c["name"]: c for c in listener(cfg, "hbone")["filter_chains"]}
        http = chains["hbone|db-0"]["filters"][0]["typed_config"]
        rbac = next(f for f in http["http_filters"] if f["name"] == "envoy.filters.http.rbac")["typed_config"]
        (policy,) = rbac["rules"]["policies"].values()
        assert policy["principals"] == [{"authenticated": {"principal_name": {"exact": TD + "waypoint-backend"}}}]
        assert chains["hbone|db-0"]["transport_socket"]["typed_config"]["common_tls_context"][
            "tls_certificates"][0]["certificate_chain"]["filename"] == "/certs/backend.crt"
        if arch == "ztunnel":  # the chain, and with it the certificate, is picked by the pod's address
            assert chains["hbone|db-0"]["filter_chain_match"]["prefix_ranges"] == [
                {"address_prefix": plan.pod("db-0").ip, "prefix_len": 32}]
    cfg, _, _ = config("ztunnel", "ztunnel-n2")  # audit (l7: false) admits its callers' accounts
    http = listener(cfg, "hbone")["filter_chains"][-1]["filters"][0]["typed_config"]
    rbac = next(f for f in http["http_filters"] if f["name"] == "envoy.filters.http.rbac")["typed_config"]
    assert [p["authenticated"]["principal_name"]["exact"] for pol in rbac["rules"]["policies"].values()
            for p in pol["principals"]] == [TD + "web"]


def test_a_ztunnel_presents_each_source_pods_own_identity():
    cfg, plan, _ = config("ztunnel", "ztunnel-n1")
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    for chain in listener(cfg, "outbound")["filter_chains"]:
        sources = {r["address_prefix"] for r in chain["filter_chain_match"]["source_prefix_ranges"]}
        accounts = {p.service_account for p in plan.pods if p.ip in sources}
        (sa,) = accounts
        tcp = chain["filters"][0]["typed_config"]
        cert = clusters[tcp["cluster"]]["transport_socket"]["typed_config"]["common_tls_context"][
            "tls_certificates"][0]["certificate_chain"]["filename"]
        assert cert == f"/certs/{sa}.crt", chain["name"]
        if tcp["cluster"].startswith("wp|"):  # to a waypoint: HBONE, pooled per (identity, waypoint)
            assert tcp["tunneling_config"]["hostname"].startswith("198.18.128.")


def test_a_waypoint_never_lets_one_callers_connection_carry_another():
    """The caller's identity rides the waypoint's internal connection to the service's
    listener: those connections are pooled per caller connection (a shared pool let a denied
    caller's request be judged as an allowed caller's, seen as 200s to a stolen identity)."""
    cfg, _, _ = config("ztunnel", "l7-backend")
    mains = [c for c in cfg["static_resources"]["clusters"] if c["name"].startswith("main|")]
    assert [c["name"] for c in mains] == ["main|api", "main|db"]
    assert all(c["connection_pool_per_downstream_connection"] is True for c in mains)


def test_with_tcp_every_app_connection_is_its_own_mtls_connection():
    cfg, plan, _ = config("ztunnel", "ztunnel-n1", "tcp")
    names = [x["name"] for x in cfg["static_resources"]["listeners"]]
    assert "hbone" not in names and "bootstrap_extensions" not in cfg
    for chain in listener(cfg, "outbound")["filter_chains"]:
        assert "tunneling_config" not in chain["filters"][0]["typed_config"]
    cfg, _, topo = config("ambient", "l7-backend", "tcp")
    assert topo.proxy("l7-backend").hbone_port is None
    assert {x["address"]["socket_address"]["port_value"] for x in cfg["static_resources"]["listeners"]} == \
        {15201, 15202}  # one mTLS listener per service: api and db, services 1 and 2


def test_the_doors_an_attacker_tries():
    for tunnel in ("hbone", "tcp"):
        plan = make_plan(mesh(tunnel), "u1", proxy_node=True)
        topo = make_topology(plan, "ztunnel")
        api, db0 = plan.service("api"), plan.pod("db-0")
        front = entry_point(plan, topo, "api")
        assert front.host == plan.node("waypoints").fabric_ip
        around = pod_door(plan, topo, "db-0")
        if tunnel == "hbone":
            assert front.authority == f"{api.vip}:{api.port}" and front.port == topo.l7_for("backend").hbone_port
            assert (around.host, around.port, around.authority) == (db0.ip, 15008, f"{db0.ip}:{db0.port}")
        else:
            assert front.authority is None and (around.host, around.port) == (db0.ip, db0.port)
        assert len(doors(plan, topo, "db")) == 2 and len(doors(plan, topo, "audit")) == 1
    sidecar_topo = make_topology(make_plan(mesh(), "u1"), "sidecar")
    assert doors(make_plan(mesh(), "u1"), sidecar_topo, "db")[0].authority is None


@pytest.mark.parametrize("text, problem", [
    ("mesh: {tunnel: quic}", "mesh.tunnel: 'quic' is not a tunnel (hbone, tcp)"),
    ("mesh: {tunnel: 1}", "mesh.tunnel: 1 is not a tunnel (hbone, tcp)"),
])
def test_a_bad_tunnel_is_refused_with_its_line(text, problem):
    source = (FIXTURES / "mesh.yaml").read_text() + text + "\n"
    with pytest.raises(SpecError) as err:
        spec.loads_cluster(source, "c.yaml")
    line = source.count("\n")
    assert f"c.yaml:{line}: {problem}" in str(err.value)
    assert spec.loads_cluster(source.replace(text, "mesh: {tunnel: tcp}")).mesh.tunnel == "tcp"
    assert mesh().mesh.tunnel == "hbone" and spec.loads_cluster(
        (FIXTURES / "mesh.yaml").read_text()).mesh.tunnel == "hbone"


def test_no_service_account_may_take_a_waypoints_name():
    with pytest.raises(SpecError) as err:
        spec.loads_cluster("name: c\nnodes: [n1]\nservices:\n  - {name: a, serviceAccount: waypoint-b, port: 80}\n",
                           "c.yaml")
    assert "c.yaml:4: services[0].serviceAccount: 'waypoint-b'" in str(err.value)


def experiment(archs: str, proxy: str) -> str:
    return (f"name: e\ncluster: {FIXTURES / 'mesh.yaml'}\narchitectures: [{archs}]\ntraffic: {{duration: 10s}}\n"
            f"faults:\n  - {{kind: proxy-crash, target: {{pod: db-0, proxy: {proxy}}}, at: 2s}}\n")


@pytest.mark.parametrize("archs, proxy, problem", [
    ("ztunnel", "l7", None),
    ("sidecar, ambient", "l4", None),
    ("ztunnel", "micro", "faults[0].target.proxy: 'micro' is not an L4 or L7 proxy of ambient or ztunnel (l4, l7)"),
    ("sidecar, node", "l7", "faults[0].target.proxy: picks between L4 and L7 proxies, but none of ambient, ztunnel"),
])
def test_fault_targets_pick_l4_or_l7_where_there_are_both(archs, proxy, problem, tmp_path):
    text = experiment(archs, proxy)
    if problem is None:
        exp = parse_experiment(loads(text, "e.yaml"), "e.yaml", tmp_path)
        assert exp.faults[0].target.proxy == proxy
    else:
        with pytest.raises(SpecError) as err:
            parse_experiment(loads(text, "e.yaml"), "e.yaml", tmp_path)
        assert f"e.yaml:6: {problem}" in str(err.value)


def headers_frame_status(block: bytes) -> str:
    return dial.status_of(block)


@pytest.mark.parametrize("block, status", [
    (b"\x88", "200"),  # indexed, static table
    (b"\x8d", "404"),
    (b"\x48\x03403", "403"),  # literal with indexing, name :status, plain value
    (b"\x48\x83\x68\x0c\xff", "403"),  # the same, Huffman-coded ('4' 011010, '0' 00000, '3' 011001, padding 1s)
    (b"\x08\x03503", "503"),  # literal without indexing
    (b"\x41\x03abc", "000"),  # not :status
])
def test_the_hbone_client_reads_the_status_of_an_answer(block, status):
    assert headers_frame_status(block) == status


def test_the_hbone_client_writes_frames_and_literals_by_the_rfcs():
    f = dial.frame(dial.HEADERS, dial.END_HEADERS, 1, b"abc")
    assert f[:3] == b"\x00\x00\x03" and f[3:5] == bytes([1, 4]) and struct.unpack(">I", f[5:9])[0] == 1
    assert dial.literal(":method", "CONNECT") == b"\x00\x07:method\x07CONNECT"


def test_a_fault_on_a_pod_hits_its_nodes_ztunnel_or_with_l7_its_accounts_waypoint():
    from testbed.chaos.base import ChaosContext, resolve
    from testbed.experiment import FaultSpec, Target
    from testbed.mesh.stage import MeshStage
    from testbed.state import Run

    plan = make_plan(mesh(), "u1", proxy_node=True)
    ctx = ChaosContext(plan, None, MeshStage(plan, Run("u1"), "ztunnel"))

    def hit(target: Target) -> list[str]:
        return [p.name for p in resolve(ctx, FaultSpec("proxy-crash", target, 2.0, 1.0))]

    assert hit(Target("pod", "db-0")) == hit(Target("pod", "db-0", "l4")) == ["ztunnel-n1"]
    assert hit(Target("pod", "db-0", "l7")) == ["l7-backend"]
    assert hit(Target("service", "api")) == ["ztunnel-n1", "ztunnel-n3"]
    assert hit(Target("pod", "audit-0", "l7")) == []  # l7: false, no waypoint
