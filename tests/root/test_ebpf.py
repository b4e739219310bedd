"""eBPF redirection: no iptables anywhere, counters that match a known workload, the app's
view of its peer, and nothing of ours left in the kernel after `down`."""

from __future__ import annotations

import json
import subprocess

import pytest

from testbed import runner
from testbed.mesh.topology import ARCHITECTURES
from testbed.redirect import ebpf
from testbed.traffic import matrix

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


every_arch = pytest.mark.parametrize("ebpf_run", ARCHITECTURES, indirect=True)


def _rules(netns: str) -> list[str]:
    ipt = subprocess.run(["ip", "netns", "exec", netns, "iptables-save"], capture_output=True, text=True).stdout
    nft = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "ruleset"], capture_output=True,
                         text=True).stdout
    return [line for line in ipt.splitlines() if line.startswith("-A")] + \
        [line.strip() for line in nft.splitlines() if line.strip().startswith(("ip ", "tcp ", "meta ", "counter"))]


@every_arch
def test_ebpf_redirection(ebpf_run):
    """One run per architecture, several facts checked on it:
    no iptables rule in any namespace; N calls in, N connections counted where the
    architecture says; inbound steered to the serving proxy; the app sees the service as
    its peer."""
    arch, st, cluster = ebpf_run
    plan = cluster.plan
    assert st["redirect"] == "ebpf"
    fresh = ebpf.stats(plan)["pods"]  # before any call: inbound connections are counted from here
    assert all(e.ok for e in matrix.probe(cluster, plan))
    for ns in plan.namespaces():
        assert _rules(ns) == [], ns

    n = 23
    before = ebpf.stats(plan)["pods"]
    api, db = plan.service("api"), plan.service("db")
    assert [r["status"] for r in cluster.call("web-0", f"http://{api.vip}:{api.port}/", count=n)] == [200] * n
    assert [r["status"] for r in cluster.call("api-1", f"http://{db.vip}:{db.port}/", count=5)] == [200] * 5
    after = ebpf.stats(plan)["pods"]
    web = {k: after["web-0"][k] - before["web-0"][k] for k in after["web-0"]}
    steered = after["db-0"]["inbound_steered"] - fresh["db-0"]["inbound_steered"]
    if arch == "none":
        assert web["balanced"] == n and web["redirected"] == 0 and steered == 0
    else:
        assert web["redirected"] == n and web["balanced"] == 0
    if arch == "ambient":  # HBONE reaches the micro-proxy's own port 15008 in the pod: nothing to steer
        assert steered == 0
    elif arch != "none":  # one per connection into db-0's proxy (proxies may reuse connections)
        assert 1 <= steered <= 11
    if arch in ("sidecar", "ambient"):  # app <-> its proxy share a namespace: short-circuited
        assert web["orig_dst"] == n
        assert web["sc_msgs"] >= 2 * n and web["sc_bytes"] > 0
    else:
        assert web["sc_msgs"] == 0

    code = (f"import socket; s = socket.create_connection(('{api.vip}', {api.port}), timeout=3); "
            "print('%s:%d' % s.getpeername())")
    r = tb("exec", "--run", plan.run_id, "web-0", "--", "python3", "-c", code)
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
