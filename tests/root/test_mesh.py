"""The mesh, for every architecture, on a cluster where two services share a service account
and one node hosts pods of several accounts (tests/fixtures/mesh.yaml)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess

import pytest

from testbed import runner, spec
from testbed.cluster import procs
from testbed.measure.wire import Capture
from testbed.mesh import admin
from testbed.mesh.topology import l7_port
from testbed.traffic import matrix
from testbed.wait import wait_for

from ..conftest import FIXTURES, tb
from .leftovers import nothing_left, own_shared_memory, snapshot

pytestmark = pytest.mark.root
MESH = FIXTURES / "mesh.yaml"
SPEC = spec.load_cluster(MESH)
ARCHS = ["sidecar", "node", "node-sa", "ambient"]
REDIRECTS = ["iptables", "ebpf"]


def allowed(src_service: str, dst_service: str) -> bool:
    """The calls policy, at the granularity of identities: services sharing a service account
    share its rights."""
    src_sa = SPEC.service(src_service).service_account
    return src_sa in {SPEC.service(c).service_account for c in SPEC.callers_of(dst_service)}


def l4_only(arch: str, service: str) -> bool:
    """Where no L7 proxy decides, a denied call is a closed connection, not a 403."""
    return arch == "ambient" and not SPEC.service(service).l7


@pytest.fixture(scope="module")
def mesh_run(request):
    """One run per (architecture, redirect), shared by the tests of this module (pytest runs
    each parameter's tests together); every test leaves it serving. Its teardown proves that
    `down` leaves nothing, Envoys and their shared memory included."""
    arch, redirect = request.param
    run_id = "t" + secrets.token_hex(3)
    try:
        st = json.loads(tb("up", MESH, "--arch", arch, "--redirect", redirect, "--run-id", run_id, "--json").stdout)
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


@archs()
def test_allowed_calls_succeed_all_others_are_denied_and_none_goes_around(mesh_run):
    arch, st, cluster, _ = mesh_run
    pairs = [(p.name, s.name) for p in cluster.plan.pods for s in cluster.plan.services]
    for edge in matrix.probe(cluster, cluster.plan, pairs, count=2):
        src = cluster.plan.pod(edge.pod).service
        if allowed(src, edge.service):
            assert edge.errors == {} and set(edge.answers) <= set(cluster.plan.service(edge.service).pods), edge
        elif l4_only(arch, edge.service):
            assert edge.answers == {} and "status 403" not in edge.errors, edge  # closed, not answered
        else:
            assert edge.errors == {"status 403": 2}, edge
    # and nobody goes around the proxies: plain HTTP to another pod's address reaches no app
    web, db = cluster.plan.pod("web-0"), cluster.plan.pod("db-0")
    results = cluster.call(web.name, f"http://{db.ip}:{db.port}/", count=2)
    assert all(r["status"] != 200 for r in results), results


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
        if arch == "ambient" and SPEC.service(service).l7:
            expected.add(topo.l7_for(SPEC.service(service).service_account).name)
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
    """node and node-sa: the hop from the node's proxy to the pod crosses the pod's veth in
    plaintext (the "last hop" problem). sidecar and ambient: only TLS crosses it."""
    arch, st, cluster, _ = mesh_run
    db = cluster.plan.pod("db-0")
    node = cluster.plan.node(db.node)
    with Capture(node.netns, db.host_if, tmp_path / "veth.pcap", cluster.plan.run_id) as cap:
        results = cluster.call("api-1", f"http://{cluster.plan.service('db').vip}:{db.port}/", count=3)
    assert all(r["status"] == 200 for r in results)
    wire = cap.summary()
    assert wire.payload_packets > 0
    assert bool(wire.plaintext_http) == (arch in ("node", "node-sa"))
    proxy = next(p for p in st["proxies"] if db.name in p["serves"] and p["role"] != "l7")
    assert proxy["plaintextHop"] == ("pod-veth" if arch in ("node", "node-sa") else "loopback")


@archs()
def test_a_stolen_svid_gets_exactly_its_accounts_rights(mesh_run):
    arch, st, cluster, mesh = mesh_run
    plan, run = cluster.plan, mesh.run
    attacker, _ = cluster.add_host("attacker")  # on the fabric, outside every pod and node
    for sa in SPEC.service_accounts():
        for svc in plan.services:
            if arch == "ambient" and SPEC.service(svc.name).l7:
                l7 = mesh.topo.l7_for(svc.service_account)
                target = f"{plan.node(l7.node).fabric_ip}:{l7_port(plan, svc.name)}"
            else:
                pod = plan.pod(svc.pods[0])
                target = f"{pod.ip}:{pod.port}"
            r = procs.run(["curl", "-sk", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}",
                           "--cert", str(run.identity_dir / f"{sa}.crt"), "--key", str(run.identity_dir / f"{sa}.key"),
                           f"https://{target}/"], attacker, timeout=10)
            callers = {SPEC.service(c).service_account for c in SPEC.callers_of(svc.name)}
            if arch == "ambient" and SPEC.service(svc.name).l7 is False:
                expect = "200" if sa in callers else "000"
            elif sa in callers:
                expect = "200"
            else:
                expect = "403"
            assert r.stdout == expect, (sa, svc.name, target, r.stdout, r.stderr)


@archs(redirects=["ebpf"])  # placement and keys do not depend on the redirection
def test_each_proxy_holds_exactly_the_keys_of_its_role(mesh_run):
    arch, st, cluster, mesh = mesh_run
    plan = cluster.plan
    for p in st["proxies"]:
        pods = [plan.pod(name) for name in p["serves"]]
        if p["role"] in ("sidecar", "micro"):
            assert p["identities"] == [pods[0].service_account] and len(pods) == 1
        elif p["role"] == "node":
            assert p["identities"] == sorted({q.service_account for q in plan.pods_on(p["node"])})
        else:  # node-sa, l7: one account
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


@archs("sidecar", "node", redirects=["ebpf"])
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
