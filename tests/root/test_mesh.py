"""The mesh, for every architecture, on a cluster where two services share a service account
and one node hosts pods of several accounts (tests/fixtures/mesh.yaml)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from testbed import runner, spec
from testbed.addressing import HBONE_PORT
from testbed.identity import spiffe_id
from testbed.measure.wire import Capture
from testbed.mesh import admin
from testbed.mesh.entry import dial, doors, entry_point, pod_door
from testbed.mesh.topology import SPLIT_ARCHITECTURES, l7_port, waypoint_identity
from testbed.spec import TUNNELS
from testbed.traffic import matrix
from testbed.wait import wait_for

from ..conftest import FIXTURES, tb
from .leftovers import nothing_left, own_shared_memory, snapshot

pytestmark = pytest.mark.root
MESH = FIXTURES / "mesh.yaml"
SPEC = spec.load_cluster(MESH)
ARCHS = ["sidecar", "node", "node-sa", "ambient", "ztunnel"]
SHARED = ("node", "node-sa", "ztunnel")  # proxies in the node's namespace: the last hop crosses the pod's veth
REDIRECTS = ["iptables", "ebpf"]


def allowed(src_service: str, dst_service: str) -> bool:
    """The calls policy, at the granularity of identities: services sharing a service account
    share its rights."""
    src_sa = SPEC.service(src_service).service_account
    return src_sa in {SPEC.service(c).service_account for c in SPEC.callers_of(dst_service)}


def l4_only(arch: str, service: str) -> bool:
    """Where no L7 proxy decides, a denied call is a closed connection, not a 403."""
    return arch in SPLIT_ARCHITECTURES and not SPEC.service(service).l7


@pytest.fixture(scope="module")
def mesh_run(request, tmp_path_factory):
    """One run per (architecture, redirect), shared by the tests of this module (pytest runs
    each parameter's tests together); every test leaves it serving. Its teardown proves that
    `down` leaves nothing, Envoys and their shared memory included. The proxies keep every
    stat (`mesh.stats: all`): the traffic test reads their per-connection-manager counters."""
    arch, redirect = request.param
    run_id = "t" + secrets.token_hex(3)
    spec_file = tmp_path_factory.mktemp("mesh") / "mesh.yaml"
    spec_file.write_text(MESH.read_text() + "mesh: {stats: all}\n")
    try:
        st = json.loads(tb("up", spec_file, "--arch", arch, "--redirect", redirect, "--run-id", run_id,
                           "--json").stdout)
        yield arch, st, runner.cluster_of(run_id), runner.mesh_of(run_id)
        during = snapshot(run_id)
        assert len(during["envoys"]) == len(st["proxies"]) and own_shared_memory(run_id), during
        tb("down", "--run", run_id)
        assert nothing_left(run_id), snapshot(run_id)
    finally:
        runner.clean(run_id)


def archs(*names, redirects=REDIRECTS):
    """Every test runs for each architecture (or those named) with each redirection."""
    params = [pytest.param((a, r), id=f"{a}-{r}") for a in names or ARCHS for r in redirects]
    return pytest.mark.parametrize("mesh_run", params, indirect=True)


def check_policy(arch: str, cluster) -> None:
    """Every pod calls every service: the allowed calls succeed, the others are denied (403
    where an L7 proxy decides, a closed connection where only L4 is on the path), and plain
    HTTP to another pod's address reaches no app."""
    pairs = [(p.name, s.name) for p in cluster.plan.pods for s in cluster.plan.services]
    for edge in matrix.probe(cluster, cluster.plan, pairs, count=2):
        src = cluster.plan.pod(edge.pod).service
        if allowed(src, edge.service):
            assert edge.errors == {} and set(edge.answers) <= set(cluster.plan.service(edge.service).pods), edge
        elif l4_only(arch, edge.service):
            assert edge.answers == {} and "status 403" not in edge.errors, edge  # closed, not answered
        else:
            assert edge.errors == {"status 403": 2}, edge
    web, db = cluster.plan.pod("web-0"), cluster.plan.pod("db-0")
    results = cluster.call(web.name, f"http://{db.ip}:{db.port}/", count=2)
    assert all(r["status"] != 200 for r in results), results


@archs()
def test_allowed_calls_succeed_all_others_are_denied_and_none_goes_around(mesh_run):
    arch, st, cluster, _ = mesh_run
    check_policy(arch, cluster)


@archs()
def test_traffic_goes_through_exactly_the_proxies_of_the_architecture(mesh_run):
    arch, st, cluster, mesh = mesh_run
    topo, plan = mesh.topo, cluster.plan

    def counters():
        return {p.name: admin.traffic(p.netns, p.admin_port) for p in topo.proxies}

    checked = set()
    for src, service in [("web-0", "api"), ("web-1", "api"), ("api-0", "db"), ("api-1", "db"), ("web-0", "audit")]:
        before = counters()
        (result,) = cluster.call(src, f"http://{plan.service(service).vip}:{plan.service(service).port}/")
        assert result["status"] == 200, result
        after = counters()
        rose = {name for name in after if after[name] > before[name]}
        expected = {topo.serving(src).name, topo.serving(result["pod"]).name}
        if topo.waypoint_of(plan, service) is not None:
            expected.add(topo.waypoint_of(plan, service).name)
        assert rose == expected, (src, service, result["pod"])
        checked.add(plan.pod(src).node == plan.pod(result["pod"]).node)
    assert checked == {True, False}, "both a same-node and a cross-node call were checked"


@archs()
def test_the_fabric_carries_only_tls(mesh_run, tmp_path):
    arch, st, cluster, _ = mesh_run
    with Capture(cluster.plan.fabric_netns, "br0", tmp_path / "fabric.pcap", cluster.plan.run_id) as cap:
        edges = matrix.probe(cluster, cluster.plan, count=4)
    assert all(e.ok for e in edges)
    wire = cap.summary()
    assert wire.payload_packets > 20 and wire.tls_packets > 0
    assert wire.plaintext_http == [], wire.plaintext_http[:3]


def test_without_a_mesh_the_fabric_shows_plaintext(run_id, tmp_path):
    """The control for the test above: the same capture sees HTTP when there is no mesh."""
    tb("up", MESH, "--run-id", run_id)
    cluster = runner.cluster_of(run_id)
    with Capture(cluster.plan.fabric_netns, "br0", tmp_path / "fabric.pcap", run_id) as cap:
        matrix.probe(cluster, cluster.plan, count=4)
    assert any(b"GET /" in p for p in cap.summary().plaintext_http)
    tb("down", "--run", run_id)


@archs()
def test_the_last_hop_is_plaintext_only_where_the_proxy_is_shared(mesh_run, tmp_path):
    """node, node-sa and ztunnel: the hop from the node's proxy to the pod crosses the pod's
    veth in plaintext (the "last hop" problem). sidecar and ambient: only TLS crosses it."""
    arch, st, cluster, _ = mesh_run
    db = cluster.plan.pod("db-0")
    node = cluster.plan.node(db.node)
    with Capture(node.netns, db.host_if, tmp_path / "veth.pcap", cluster.plan.run_id) as cap:
        results = cluster.call("api-1", f"http://{cluster.plan.service('db').vip}:{db.port}/", count=3)
    assert all(r["status"] == 200 for r in results)
    wire = cap.summary()
    assert wire.payload_packets > 0
    assert bool(wire.plaintext_http) == (arch in SHARED)
    proxy = next(p for p in st["proxies"] if db.name in p["serves"] and p["role"] != "l7")
    assert proxy["plaintextHop"] == ("pod-veth" if arch in SHARED else "loopback")


@archs()
def test_a_stolen_svid_gets_exactly_its_accounts_rights(mesh_run):
    """Through the front door (a waypoint, where there is one) an account reaches what `calls`
    allows it; around a waypoint, straight to a pod's L4 proxy, no account gets in: only the
    waypoint's own identity does, so no sibling of an account can skip its waypoint."""
    arch, st, cluster, mesh = mesh_run
    plan, run = cluster.plan, mesh.run
    attacker, _ = cluster.add_host("attacker")  # on the fabric, outside every pod and node
    for sa in SPEC.service_accounts():
        tries = [(svc.name, door) for svc in plan.services for door in doors(plan, mesh.topo, svc.name)]
        got = dial(attacker, run.identity_dir / f"{sa}.crt", run.identity_dir / f"{sa}.key", [d for _, d in tries])
        for (service, door), status in zip(tries, got, strict=True):
            allowed_here = sa in {SPEC.service(c).service_account for c in SPEC.callers_of(service)}
            if door != entry_point(plan, mesh.topo, service):
                expect = "000"  # around the waypoint: the L4 proxy admits the waypoint alone
            elif allowed_here:
                expect = "200"
            else:
                expect = "000" if l4_only(arch, service) else "403"
            assert status == expect, (sa, service, door.describe(), status)
    if arch in SPLIT_ARCHITECTURES:  # the door around a waypoint is the waypoint's
        db = plan.pod("db-0")
        wp = waypoint_identity(db.service_account)
        assert dial(attacker, run.identity_dir / f"{wp}.crt", run.identity_dir / f"{wp}.key",
                    [pod_door(plan, mesh.topo, db.name)]) == ["200"]


@archs(redirects=["ebpf"])  # placement and keys do not depend on the redirection
def test_each_proxy_holds_exactly_the_keys_of_its_role(mesh_run):
    arch, st, cluster, mesh = mesh_run
    plan = cluster.plan
    for p in st["proxies"]:
        pods = [plan.pod(name) for name in p["serves"]]
        if p["role"] in ("sidecar", "micro"):
            assert p["identities"] == [pods[0].service_account] and len(pods) == 1
        elif p["role"] in ("node", "ztunnel"):  # every account with a pod on the node
            assert p["identities"] == sorted({q.service_account for q in plan.pods_on(p["node"])})
        elif p["role"] == "l7":  # a waypoint: its own identity, not its account's
            (sa,) = {q.service_account for q in pods}
            assert p["identities"] == [waypoint_identity(sa)]
        else:  # node-sa: one account
            assert len(p["identities"]) == 1 and {q.service_account for q in pods} == set(p["identities"])
        certs = mesh.run.proxies_dir / p["name"] / "certs"
        expected = {"ca.crt"} | {f"{sa}.{ext}" for sa in p["identities"] for ext in ("crt", "key")}
        assert set(os.listdir(certs)) == expected
        for f in certs.iterdir():
            assert f.stat().st_uid == p["uid"] and f.stat().st_mode & 0o077 == 0
    # a proxy's uid cannot read another proxy's keys
    a, b = st["proxies"][0], st["proxies"][-1]
    key = next((mesh.run.proxies_dir / b["name"] / "certs").glob("*.key"))
    r = subprocess.run(["setpriv", f"--reuid={a['uid']}", f"--regid={a['uid']}", "--clear-groups", "cat", str(key)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr


@archs("sidecar", "node", "ztunnel", redirects=["ebpf"])
def test_upgrade_in_place(mesh_run):
    arch, st, cluster, mesh = mesh_run
    name = mesh.topo.serving("api-0").name
    before = mesh.proxy_status()[name]["pid"]
    hot = json.loads(json.dumps(runner.upgrade(cluster.plan.run_id, "api-0", "hot-restart")))
    assert hot["proxy"] == name and hot["epoch"] == 1 and hot["pid"] != before
    restart = runner.upgrade(cluster.plan.run_id, name, "restart")
    assert restart["epoch"] == 0 and restart["pid"] != hot["pid"]
    db, api = cluster.plan.service("db"), cluster.plan.service("api")
    assert all(r["status"] == 200 for r in cluster.call("api-0", f"http://{db.vip}:{db.port}/", count=3))
    answers = cluster.call("web-0", f"http://{api.vip}:{api.port}/", count=8)  # into the new proxy too
    assert all(r["status"] == 200 for r in answers) and "api-0" in {r["pod"] for r in answers}
    assert mesh.proxy_status()[name]["restarts"] == 0  # upgrades are not crashes (and it ran before the kill)


@archs("node", redirects=["iptables"])
def test_proxy_config_prints_the_config_of_the_serving_proxy(mesh_run):
    arch, st, cluster, mesh = mesh_run
    r = tb("proxy-config", "--run", cluster.plan.run_id, "db-0")
    assert "node-n1" in r.stderr and "in|db" in r.stdout and "spiffe://cluster.local/ns/default/sa/backend" in r.stdout


@pytest.fixture
def tunnel_run(request, run_id, tmp_path):
    arch, tunnel = request.param
    spec_file = tmp_path / "mesh.yaml"
    spec_file.write_text(MESH.read_text() + f"mesh: {{tunnel: {tunnel}}}\n")
    tb("up", spec_file, "--arch", arch, "--run-id", run_id)  # eBPF: the default
    yield arch, tunnel, runner.cluster_of(run_id), runner.mesh_of(run_id)
    tb("down", "--run", run_id, check=False)


def tunnel_log(mesh, proxy: str) -> list[tuple[str, str, str]]:
    """(peer, authority, status) of each HBONE stream the proxy ended (it logs one line per
    stream on stdout, flushed every second)."""
    lines = Path(mesh.run.log(proxy)).read_text().splitlines()
    return [tuple(w.split("=", 1)[1] for w in line.split()[1:4]) for line in lines if line.startswith("tunnel ")]


@pytest.mark.parametrize("tunnel_run", [pytest.param((a, t), id=f"{a}-{t}") for a in SPLIT_ARCHITECTURES
                                        for t in TUNNELS], indirect=True)
def test_hbone_multiplexes_carries_each_pods_identity_and_no_sibling_skips_the_waypoint(tunnel_run, tmp_path):
    """N connection-per-request calls ride one TLS connection each way with HBONE, N with
    tcp; the destination sees each source pod's own identity (web-0 and api-0 share n1's
    ztunnel); and holding an account's SVID gets no one around its waypoint."""
    arch, tunnel, cluster, mesh = tunnel_run
    plan, topo, run, n = cluster.plan, mesh.topo, mesh.run, 12
    api, audit = plan.service("api"), plan.service("audit")  # api behind a waypoint, audit l7: false
    waypoint, audit_proxy = topo.waypoint_of(plan, "api"), topo.serving("audit-0").name
    with Capture(plan.fabric_netns, "br0", tmp_path / "fabric.pcap", plan.run_id) as cap:
        for service in (api, audit):
            assert [r["status"] for r in cluster.call("web-0", f"http://{service.vip}:{service.port}/", count=n)] \
                == [200] * n
    tls = cap.summary().tls_connections
    to_waypoint = tls.get(f"{plan.node(waypoint.node).fabric_ip}:{waypoint.hbone_port or l7_port(plan, 'api')}", 0)
    to_audit = tls.get(f"{plan.pod('audit-0').ip}:{HBONE_PORT if tunnel == 'hbone' else audit.port}", 0)
    assert (to_waypoint, to_audit) == ((1, 1) if tunnel == "hbone" else (n, n)), tls

    td = plan.spec.mesh.trust_domain
    if tunnel == "hbone":  # checked where the tunnels end: each pod's own SVID, never its neighbour's
        m = 3
        assert all(r["status"] != 200 for r in cluster.call("api-0", f"http://{audit.vip}:{audit.port}/", count=m))
        expect = sorted([(spiffe_id(td, "web"), f"{audit.vip}:{audit.port}", "200")] * n +
                        [(spiffe_id(td, "backend"), f"{audit.vip}:{audit.port}", "403")] * m)
        wait_for(lambda: len(tunnel_log(mesh, audit_proxy)) >= n + m, 20, f"{audit_proxy} to log {n + m} tunnels")
        assert sorted(tunnel_log(mesh, audit_proxy)) == expect
        wait_for(lambda: len(tunnel_log(mesh, waypoint.name)) >= n, 20, f"{waypoint.name} to log {n} tunnels")
        assert tunnel_log(mesh, waypoint.name) == [(spiffe_id(td, "web"), f"{api.vip}:{api.port}", "200")] * n
    check_policy(arch, cluster)  # in either tunnel

    # web's own SVID (what web-1's L4 proxy holds) gets nothing from web-0: nobody calls web,
    # its waypoint says 403, and web-0's L4 proxy admits the waypoint alone
    attacker, _ = cluster.add_host("sibling")
    front, around = entry_point(plan, topo, "web"), pod_door(plan, topo, "web-0")
    assert front != around
    assert dial(attacker, run.identity_dir / "web.crt", run.identity_dir / "web.key", [front, around]) == \
        ["403", "000"]
    # and a denied caller is judged as itself while an allowed one's calls flow through the same
    # waypoint (the caller's identity rides the waypoint's internal connections: never shared)
    stop = threading.Event()

    def allowed_traffic():
        while not stop.is_set():
            cluster.call("web-0", f"http://{api.vip}:{api.port}/", count=4)

    flowing = threading.Thread(target=allowed_traffic)
    flowing.start()
    try:
        got = dial(attacker, run.identity_dir / "backend.crt", run.identity_dir / "backend.key",
                   [entry_point(plan, topo, "api")] * 20)
    finally:
        stop.set()
        flowing.join()
    assert got == ["403"] * 20


@archs()
def test_a_killed_proxy_is_back_within_2s(mesh_run):
    """The proxy serving db-0 dies; the supervisor restarts it, and calls into db-0 (whose
    inbound capture must find the new listener) and out of it work again. (Last of the
    module's tests for each run: the run's teardown then proves `down` leaves nothing.)"""
    arch, st, cluster, mesh = mesh_run
    proxy = mesh.topo.serving("db-0")
    status = mesh.proxy_status()[proxy.name]
    old, restarts = status["pid"], status["restarts"]
    os.kill(old, signal.SIGKILL)

    def back():
        s = mesh.proxy_status()[proxy.name]
        return s["pid"] not in (None, old) and s["state"] == "ready"

    wait_for(back, 2.0, f"{proxy.name} to be restarted and ready", interval=0.01)
    db = cluster.plan.service("db")
    for src in ("api-0", "api-1"):
        assert [r["status"] for r in cluster.call(src, f"http://{db.vip}:{db.port}/", count=2)] == [200, 200]
    assert mesh.proxy_status()[proxy.name]["restarts"] == restarts + 1
