"""The Mininet backend: the backend-neutral tests of the namespace backend, run on a cluster
built by Mininet (a connectivity test, one mesh architecture with its allowed and denied
calls, a crash and its blast radius), Mininet's CLI driven by a script, and teardown and
`clean` leaving nothing, with no `mn -c`. The rest of the suite runs on the default
backend; what is backend-neutral is exactly what these tests call."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from testbed import runner
from testbed.cluster import netns
from testbed.wait import wait_for

from ..conftest import FIXTURES, ROOT, TESTBED, tb
from . import test_chaos, test_cluster, test_mesh
from .leftovers import nothing_left, root_links, snapshot, tagged_processes

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def mininet_installed():
    """`make test` installs Debian's mininet (provision.sh): missing, it is a set-up failure."""
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        pytest.fail("Debian's mininet is not installed: scripts/provision.sh installs it (make setup)")


def mininet_shells(run_id: str) -> list[int]:
    """Live processes of the run that are Mininet's node shells (`bash ... mininet:<node>`)."""
    out = []
    for pid in tagged_processes(run_id):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"mininet:" in f.read():
                    out.append(pid)
        except OSError:
            pass
    return out


def test_a_cluster_built_by_mininet_connects_opens_mininets_cli_and_goes_without_a_trace(run_id):
    links_before = root_links()
    st = json.loads(tb("up", FIXTURES / "uneven.yaml", "--backend", "mininet", "--redirect", "iptables",
                       "--run-id", run_id, "--json").stdout)
    try:
        assert st["backend"] == "mininet" and not mininet_shells(run_id), "the build's shells have ended"
        for ns in [st["fabric"]["netns"], *(n["netns"] for n in st["nodes"]), *(p["netns"] for p in st["pods"])]:
            assert ns.startswith(f"tb-{run_id}-") and netns.exists(ns)
        plan = runner.cluster_of(run_id).plan
        for pod in plan.pods:  # as on the namespace backend: neighbours never meet over the bridge
            r = subprocess.run(["ip", "-n", plan.node(pod.node).netns, "-d", "link", "show", pod.host_if],
                               capture_output=True, text=True)
            assert "isolated on" in r.stdout, r.stdout + r.stderr
        # the namespace backend's own tests, on this cluster
        test_cluster.test_every_pod_reaches_every_service_it_calls(st, run_id)
        test_cluster.test_exec_runs_in_the_pods_namespace_and_cgroup(st, run_id)
        test_cluster.test_nothing_leaves_the_testbed_range(st, run_id)

        script = "nodes\nnet\npingall\napi-0 ip -4 -o addr show eth0\ndb-1 curl -s -m 3 http://198.18.128.1:8080/\n"
        r = subprocess.run(TESTBED + ["cli", "--run", run_id], input=script, cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "api-0 api-1 api-2 br_fabric br_n1 br_n2 br_n3 cache-0" in out  # nodes
        assert "br_fabric n-n1:eth0 n-n2:eth0 n-n3:eth0" in out and "n1 eth0:n-n1 br0:" in out  # net
        assert "*** Results: 0% dropped (110/110 received)" in out  # 11 hosts ping each other
        assert "inet 198.19.1.2/32" in out  # api-0's address, as the plan has it
        assert '"service": "api"' in out  # a pod's command runs in its cgroup: the VIP is translated
        assert not mininet_shells(run_id), "leaving the CLI ends its shells, not the cluster"
        assert all(e["ok"] for e in json.loads(tb("matrix", "--run", run_id, "--json").stdout))
    finally:
        tb("down", "--run", run_id, check=False)
    assert nothing_left(run_id), snapshot(run_id)
    assert root_links() == links_before, "Mininet made nothing in the root namespace"


def test_a_mesh_on_mininet_allows_what_calls_allow_and_a_killed_proxy_comes_back(run_id):
    """One architecture (node: its proxies and policy routing live in the namespaces Mininet
    made), eBPF redirection; the mesh tests of the namespace backend, unchanged."""
    st = json.loads(tb("up", FIXTURES / "mesh.yaml", "--arch", "node", "--backend", "mininet", "--run-id", run_id,
                       "--json", timeout=300).stdout)
    mesh_run = ("node", st, runner.cluster_of(run_id), runner.mesh_of(run_id))
    try:
        assert type(mesh_run[2]).__name__ == "MininetCluster"
        test_mesh.test_allowed_calls_succeed_all_others_are_denied_and_none_goes_around(mesh_run)
        test_mesh.test_a_killed_proxy_is_back_within_2s(mesh_run)
        tb("down", "--run", run_id)
        assert nothing_left(run_id), snapshot(run_id)
    finally:
        tb("down", "--run", run_id, check=False)


def test_a_proxy_crash_on_mininet_has_the_blast_radius_of_its_architecture(tmp_path):
    exp = tmp_path / "experiment.yaml"
    exp.write_text(f"name: t\ncluster: {test_chaos.MESH}\narchitectures: [node]\nredirect: iptables\n"
                   "traffic: {rate: 10, duration: 6s}\n"
                   "faults:\n  - {kind: proxy-crash, target: {pod: db-0}, at: 2s, restartDelay: 2s}\n")
    out = tmp_path / "out"
    tb("run", exp, "--out", out, "--backend", "mininet", timeout=600)
    journal = json.loads((out / "journal.json").read_text())
    assert journal["backend"] == "mininet"
    result = journal["architectures"]["node"]
    (crash,) = result["faults"]
    served = {"web-0", "api-0", "db-0"}  # node-n1 serves every pod on n1
    assert crash["proxies_hit"] == 1 and set(crash["pods_served_list"]) == served
    assert crash["flows_affected"] == test_chaos.expected_affected(served) == 5
    assert crash["requests_failed"] > 0 and result["clean_after"]["failed"] == 0
    assert nothing_left(result["run"]), snapshot(result["run"])


def test_clean_after_sigkill_of_a_mininet_build_removes_everything(run_id):
    """Killed while Mininet's shells are up: `clean --run` finds namespaces, shells and
    cgroups by the run's tag; `mn -c` is never needed."""
    links_before = root_links()
    p = subprocess.Popen(TESTBED + ["up", str(FIXTURES / "big.yaml"), "--backend", "mininet", "--run-id", run_id],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(mininet_shells(run_id)) > 3, 60, "Mininet's shells to start", interval=0.005)
    finally:
        p.kill()
        p.wait()
    assert snapshot(run_id)["namespaces"], "nothing to clean: the test did not test anything"
    tb("clean", "--run", run_id)
    assert nothing_left(run_id), snapshot(run_id)
    assert not mininet_shells(run_id) and root_links() == links_before
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"tb-{run_id}-")]
