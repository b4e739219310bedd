"""The cluster of namespaces, driven through the CLI as a user would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from testbed.cluster import netns
from testbed.wait import wait_for

from ..conftest import FIXTURES, ROOT, TESTBED, tb
from .leftovers import nothing_left, root_links, snapshot

pytestmark = pytest.mark.root
UNEVEN = FIXTURES / "uneven.yaml"
BIG = FIXTURES / "big.yaml"


@pytest.fixture
def uneven(run_id):
    st = json.loads(tb("up", UNEVEN, "--run-id", run_id, "--json").stdout)
    yield st
    tb("down", "--run", run_id, check=False)


def test_every_pod_reaches_every_service_it_calls(uneven, run_id):
    r = tb("matrix", "--run", run_id, "--count", "12", "--json")
    edges = json.loads(r.stdout)
    pods = {p["name"]: p for p in uneven["pods"]}
    expected = {(p, c["to"]) for p in pods for c in uneven["calls"] if c["from"] == pods[p]["service"]}
    assert {(e["from"], e["to"]) for e in edges} == expected
    for e in edges:
        assert e["errors"] == {}, e
        replicas = [p for p in pods if pods[p]["service"] == e["to"]]
        assert set(e["answers"]) <= set(replicas)  # only the service's own pods answer
        assert sum(e["answers"].values()) == 12
        if len(replicas) > 1:
            assert len(e["answers"]) > 1, f"one replica answered all calls of {e}"


def test_status_json_has_the_contract_fields(uneven, run_id):
    st = json.loads(tb("status", "--run", run_id, "--json").stdout)
    assert st["run"] == run_id and st["architecture"] == "none" and st["proxies"] == []
    assert {"name", "ip", "netns"} <= set(st["nodes"][0])
    assert {"name", "service", "serviceAccount", "node", "ip", "netns"} <= set(st["pods"][0])
    assert {"name", "vip", "port", "serviceAccount"} <= set(st["services"][0])
    on_n1 = [p["name"] for p in st["pods"] if p["node"] == "n1"]
    assert on_n1 == ["api-0", "db-0", "db-1", "cache-0", "cache-2"]
    for p in st["pods"]:
        assert os.path.exists(f"/run/netns/{p['netns']}")


def test_exec_runs_in_the_pods_namespace_and_cgroup(uneven, run_id):
    pod = next(p for p in uneven["pods"] if p["name"] == "cache-1")
    ns = tb("exec", "--run", run_id, "cache-1", "--", "readlink", "/proc/self/ns/net").stdout.strip()
    assert ns == f"net:[{netns.inode(pod['netns'])}]"
    cg = tb("exec", "--run", run_id, "cache-1", "--", "cat", "/proc/self/cgroup").stdout
    assert f"0::/tb-{run_id}/pods/cache-1" in cg.splitlines()
    addr = tb("exec", "--run", run_id, "cache-1", "--", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert f"{pod['ip']}/32" in addr
    r = tb("exec", "--run", run_id, "cache-1", "--", "sh", "-c", "exit 7", check=False)
    assert r.returncode == 7


def test_exec_curl_by_vip_reaches_a_replica(uneven, run_id):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    db = next(s for s in uneven["services"] if s["name"] == "db")
    out = tb("exec", "--run", run_id, "api-2", "--", "curl", "-s", "-m", "3",
                  f"http://{db['vip']}:{db['port']}/").stdout
    assert json.loads(out)["pod"] in {"db-0", "db-1"}


def test_nothing_leaves_the_testbed_range(uneven, run_id):
    """No namespace has a route off the machine: a pod cannot even try to reach elsewhere."""
    r = tb("exec", "--run", run_id, "api-0", "--", "ip", "route", "get", "192.0.2.1", check=False)
    assert r.returncode != 0 and "unreachable" in r.stderr.lower()
    for node in uneven["nodes"]:
        routes = subprocess.run(["ip", "-n", node["netns"], "route", "show", "default"],
                                capture_output=True, text=True).stdout
        assert routes.strip() == ""


def test_down_leaves_zero_objects(run_id):
    links_before = root_links()
    ns_before = len(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else 0
    tb("up", UNEVEN, "--run-id", run_id)
    during = snapshot(run_id)
    assert len(during["namespaces"]) == 1 + 3 + 8 and len(during["processes"]) == 8
    assert during["cgroups"] == [f"tb-{run_id}"]
    tb("down", "--run", run_id)
    assert nothing_left(run_id), snapshot(run_id)
    assert root_links() == links_before
    assert len(os.listdir("/run/netns")) == ns_before
    # down is idempotent: a second one says there is no such run, and changes nothing
    r = tb("down", "--run", run_id, check=False)
    assert r.returncode == 1 and f"no run {run_id}" in r.stderr


def test_ctrl_c_during_up_leaves_nothing(run_id):
    p = subprocess.Popen(TESTBED + ["up", str(BIG), "--run-id", run_id], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: netns.list_tagged(f"tb-{run_id}-"), 20, "the build to start", interval=0.002)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    assert "interrupted" in err
    assert nothing_left(run_id), snapshot(run_id)


def test_clean_after_sigkill_of_up_removes_everything(run_id):
    p = subprocess.Popen(TESTBED + ["up", str(BIG), "--run-id", run_id], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill it once agents are starting: namespaces, links, cgroups and processes all exist
    wait_for(lambda: snapshot(run_id)["processes"], 30, "agents to start", interval=0.005)
    p.kill()
    p.wait()
    assert snapshot(run_id)["namespaces"], "nothing to clean: the test did not test anything"
    r = tb("clean", "--run", run_id, "-v")
    assert "namespace tb-" in r.stdout
    assert nothing_left(run_id), snapshot(run_id)
    assert tb("clean", "--run", run_id).stdout.strip() == "nothing to remove"


def test_clean_finds_a_runs_worker_by_its_tag_outside_the_runs_namespaces(run_id, tmp_path):
    """A worker that lost its namespace and cgroup (here: an agent in an anonymous netns)
    is still the run's, by its --run tag; clean of another run leaves it alone."""
    from testbed.cluster.agentctl import AGENT_SCRIPT

    control = tmp_path / "control.sock"
    worker = subprocess.Popen(["unshare", "--net", "python3", "-I", "-S", AGENT_SCRIPT, "--run", run_id, "--pod",
                               "p", "--service", "s", "--node", "n", "--port", "8080", "--control", str(control)])
    try:
        wait_for(control.exists, 10, "the stray agent to start")
        tb("clean", "--run", run_id + "z")
        assert worker.poll() is None
        r = tb("clean", "--run", run_id, "-v")
        assert "1 testbed workers tagged with the run" in r.stdout
        assert worker.wait(5) == -signal.SIGKILL
    finally:
        worker.kill()
        worker.wait()


def test_two_runs_side_by_side_do_not_collide(run_id):
    other = run_id[:-1] + ("x" if run_id[-1] != "x" else "y")
    try:
        tb("up", UNEVEN, "--run-id", run_id)
        tb("up", UNEVEN, "--run-id", other)
        for rid in (run_id, other):
            assert all(e["ok"] for e in json.loads(tb("matrix", "--run", rid, "--json").stdout))
        tb("down", "--run", run_id)
        assert nothing_left(run_id)
        assert all(e["ok"] for e in json.loads(tb("matrix", "--run", other, "--json").stdout))
        r = tb("status", check=False)  # one run left: --run may be omitted
        assert r.returncode == 0 and f"run {other}" in r.stdout
    finally:
        tb("clean", "--run", other, check=False)
    assert nothing_left(other)


def test_same_run_id_twice_is_refused_and_harms_nothing(uneven, run_id):
    r = tb("up", UNEVEN, "--run-id", run_id, check=False)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert all(e["ok"] for e in json.loads(tb("matrix", "--run", run_id, "--json").stdout))


def test_bad_spec_creates_nothing(run_id):
    bad = FIXTURES / "bad" / "port_range.yaml"
    before = time.time()
    r = tb("up", bad, "--run-id", run_id, check=False)
    assert r.returncode == 1
    assert f"{bad}:7: services[1].port: 70000 is out of range" in r.stderr
    assert nothing_left(run_id)
    assert time.time() - before < 30


def test_not_root_gets_one_line_and_exit_2(tmp_path):
    if not shutil.which("runuser"):
        pytest.skip("runuser is not available to drop privileges")
    r = subprocess.run(["runuser", "-u", "nobody", "--"] + TESTBED + ["status"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r
    assert r.stderr.strip().count("\n") == 0 and "root" in r.stderr


def _colliding(run_id: str) -> str:
    """Another run id whose hash falls in the same proxy-id block as `run_id`'s (the old,
    hash-only allocation gave such runs the same uids and shared memory)."""
    import secrets
    import zlib

    from testbed import naming

    want = zlib.crc32(run_id.encode()) % naming.PROXY_ID_BLOCKS
    while True:
        other = "t" + secrets.token_hex(3)
        if other != run_id and zlib.crc32(other.encode()) % naming.PROXY_ID_BLOCKS == want:
            return other


def test_two_mesh_runs_whose_ids_collide_keep_apart_and_downing_one_spares_the_other(run_id):
    from testbed import runner

    other = _colliding(run_id)
    mesh = FIXTURES / "mesh.yaml"
    try:
        a = json.loads(tb("up", mesh, "--arch", "sidecar", "--run-id", run_id, "--json").stdout)
        b = json.loads(tb("up", mesh, "--arch", "node", "--run-id", other, "--json", "--redirect", "iptables").stdout)
        uids_a, uids_b = {p["uid"] for p in a["proxies"]}, {p["uid"] for p in b["proxies"]}
        assert uids_a and uids_b and not uids_a & uids_b
        for st in (a, b):
            assert all(e["ok"] for e in json.loads(tb("matrix", "--run", st["run"], "--json").stdout))
            for p in st["proxies"]:
                certs = os.path.join(os.path.dirname(p["config"]), "certs")
                assert os.stat(certs).st_uid == p["uid"] and os.stat(certs).st_mode & 0o777 == 0o700
                for f in os.listdir(certs):
                    s = os.stat(os.path.join(certs, f))
                    assert (s.st_uid, s.st_mode & 0o777) == (p["uid"], 0o600), (p["name"], f)
        # one run's proxy uid cannot read the other's keys
        key = os.path.join(os.path.dirname(b["proxies"][0]["config"]), "certs", "web.key")
        r = subprocess.run(["setpriv", f"--reuid={a['proxies'][0]['uid']}", f"--regid={a['proxies'][0]['uid']}",
                            "--clear-groups", "cat", key], capture_output=True, text=True)
        assert r.returncode != 0 and "Permission denied" in r.stderr
        tb("down", "--run", run_id)
        assert nothing_left(run_id), snapshot(run_id)
        assert all(e["ok"] for e in json.loads(tb("matrix", "--run", other, "--json").stdout))
        # its hot-restart shared memory survived the other run's teardown
        up = runner.upgrade(other, b["proxies"][0]["name"], "hot-restart")
        assert up["epoch"] == 1
        assert all(e["ok"] for e in json.loads(tb("matrix", "--run", other, "--json").stdout))
    finally:
        tb("clean", "--run", other, check=False)
    assert nothing_left(other), snapshot(other)
