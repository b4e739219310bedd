"""eBPF redirection: no iptables anywhere, counters that match a known workload, the app's
view of its peer, and nothing of ours left in the kernel after `down`."""

from __future__ import annotations

import json
import subprocess

import pytest

from testbed import runner
from testbed.redirect import ebpf

from ..conftest import FIXTURES, tb
from .leftovers import nothing_left, snapshot

pytestmark = pytest.mark.root
MESH = FIXTURES / "mesh.yaml"


@pytest.fixture
def ebpf_run(request, run_id):
    arch = request.param
    st = json.loads(tb("up", MESH, "--arch", arch, "--run-id", run_id, "--json").stdout)  # ebpf: the default
    yield arch, st, runner.cluster_of(run_id)
    tb("down", "--run", run_id, check=False)


every_arch = pytest.mark.parametrize("ebpf_run", ["none", "sidecar", "node", "node-sa", "ambient"], indirect=True)


def _rules(netns: str) -> list[str]:
    ipt = subprocess.run(["ip", "netns", "exec", netns, "iptables-save"], capture_output=True, text=True).stdout
    nft = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "ruleset"], capture_output=True,
                         text=True).stdout
    return [line for line in ipt.splitlines() if line.startswith("-A")] + \
        [line.strip() for line in nft.splitlines() if line.strip().startswith(("ip ", "tcp ", "meta ", "counter"))]


@every_arch
def test_no_iptables_rule_in_any_namespace(ebpf_run):
    arch, st, cluster = ebpf_run
    assert st["redirect"] == "ebpf"
    assert all(e.ok for e in __import__("testbed.traffic.matrix", fromlist=["probe"]).probe(cluster, cluster.plan))
    for ns in cluster.plan.namespaces():
        assert _rules(ns) == [], ns


@every_arch
def test_counters_match_a_known_workload(ebpf_run):
    """N calls in, N connections counted where the architecture says."""
    arch, st, cluster = ebpf_run
    plan, n = cluster.plan, 23
    before = ebpf.stats(plan)["pods"]["web-0"]
    api = plan.service("api")
    results = cluster.call("web-0", f"http://{api.vip}:{api.port}/", count=n)
    assert [r["status"] for r in results] == [200] * n
    after = ebpf.stats(plan)["pods"]["web-0"]
    delta = {k: after[k] - before[k] for k in after}
    if arch == "none":
        assert delta["balanced"] == n and delta["redirected"] == 0
    else:
        assert delta["redirected"] == n and delta["balanced"] == 0
    if arch in ("sidecar", "ambient"):  # app <-> its proxy share a namespace: short-circuited
        assert delta["orig_dst"] == n
        assert delta["sc_msgs"] >= 2 * n and delta["sc_bytes"] > 0
    else:
        assert delta["sc_msgs"] == 0


@every_arch
def test_inbound_is_steered_to_the_serving_proxy(ebpf_run):
    arch, st, cluster = ebpf_run
    plan = cluster.plan
    db = plan.service("db")
    before = ebpf.stats(plan)["pods"]["db-0"]["inbound_steered"]
    assert [r["status"] for r in cluster.call("api-1", f"http://{db.vip}:{db.port}/", count=5)] == [200] * 5
    steered = ebpf.stats(plan)["pods"]["db-0"]["inbound_steered"] - before
    if arch == "none":
        assert steered == 0
    else:
        assert 1 <= steered <= 5  # one per connection into db-0's proxy (proxies may reuse connections)


@every_arch
def test_the_app_sees_the_service_as_its_peer(ebpf_run):
    arch, st, cluster = ebpf_run
    api = cluster.plan.service("api")
    code = (f"import socket; s = socket.create_connection(('{api.vip}', {api.port}), timeout=3); "
            "print('%s:%d' % s.getpeername())")
    r = tb("exec", "--run", cluster.plan.run_id, "web-0", "--", "python3", "-c", code)
    assert r.stdout.strip() == f"{api.vip}:{api.port}"


@pytest.mark.parametrize("ebpf_run", ["sidecar", "node"], indirect=True)
def test_down_leaves_no_program_map_or_pin(ebpf_run):
    arch, st, cluster = ebpf_run
    run_id = cluster.plan.run_id
    during = snapshot(run_id)
    assert during["bpf_pins"] and "tb_connect4" in during["bpf_programs"]
    tb("down", "--run", run_id)
    assert nothing_left(run_id), snapshot(run_id)
    progs = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True).stdout
    maps = subprocess.run(["bpftool", "map", "show"], capture_output=True, text=True).stdout
    assert " tb_" not in progs and " tb_" not in maps
