"""eBPF redirection: no iptables anywhere, counters that match a known workload, the app's
view of its peer, and nothing of ours left in the kernel after `down`."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from testbed import runner
from testbed.mesh.topology import ARCHITECTURES
from testbed.redirect import bpffs, ebpf
from testbed.traffic import matrix
from testbed.wait import wait_for

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


def _pinned_ids(run_id: str) -> dict[str, set[int]]:
    """The kernel ids of the run's pinned programs and maps (other runs on the machine
    load programs of the same names: ids tell ours apart)."""
    pins = ebpf.pin_dir(run_id)
    out: dict[str, set[int]] = {"prog": set(), "map": set()}
    for name in os.listdir(pins):
        if name.startswith(("prog_", "tb_")):
            fd = bpffs.obj_get(f"{pins}/{name}")
            try:
                kind = "prog" if name.startswith("prog_") else "map"
                out[kind].add((bpffs.prog_info(fd) if kind == "prog" else bpffs.map_info(fd)).id)
            finally:
                os.close(fd)
    return out


def _still_loaded(ids: dict[str, set[int]]) -> list[str]:
    return [f"{kind} {i}" for kind, some in ids.items() for i in some
            if subprocess.run(["bpftool", kind, "show", "id", str(i)], capture_output=True).returncode == 0]


@pytest.mark.parametrize("ebpf_run", ["sidecar", "node"], indirect=True)
def test_down_leaves_no_program_map_or_pin(ebpf_run):
    arch, st, cluster = ebpf_run
    run_id = cluster.plan.run_id
    during = snapshot(run_id)
    assert during["bpf_pins"] and "tb_connect4" in during["bpf_programs"]
    ids = _pinned_ids(run_id)
    assert len(ids["prog"]) == len(ebpf.PROGRAMS) and len(ids["map"]) >= 10, ids
    tb("down", "--run", run_id)
    assert nothing_left(run_id), snapshot(run_id)
    wait_for(lambda: not _still_loaded(ids), 5, lambda: f"{_still_loaded(ids)} to be freed")


def test_the_compile_cache_loads_exactly_what_bcc_loads(run_id, tmp_path, monkeypatch):
    """Every program through the cache (cold: compiled into it; then warm) and through bcc:
    the kernel's tag of a program hashes its instructions with map references zeroed, so
    equal tags mean the very same code whoever loaded it."""
    from testbed.redirect import bpf_compile

    monkeypatch.setenv("TESTBED_BPF_CACHE", str(tmp_path / "cache"))
    pins = ebpf.pin_dir(run_id)
    for sub in ("bcc", "cold", "warm"):
        os.makedirs(f"{pins}/{sub}")
    for name, types in ebpf.PROGRAMS.items():
        bpf_compile.compile_and_pin(f"{pins}/bcc", name, *types)
    assert bpf_compile.load_all(run_id, f"{pins}/cold", ebpf.PROGRAMS) == ("compiled", None)
    assert bpf_compile.load_all(run_id, f"{pins}/warm", ebpf.PROGRAMS) == ("cache", None)

    def tags(sub):
        out = {}
        for name in ebpf.PROGRAMS:
            fd = bpffs.obj_get(f"{pins}/{sub}/prog_{name}")
            try:
                info = bpffs.prog_info(fd)
                out[name] = (bytes(info.tag).hex(), info.type, info.xlated_prog_len)
            finally:
                os.close(fd)
        return out

    assert tags("bcc") == tags("cold") == tags("warm")
    # the maps a bcc load leaves, every one, with the same layout
    for name in os.listdir(f"{pins}/bcc"):
        if name.startswith("tb_"):
            a, b = (bpffs.obj_get(f"{pins}/{sub}/{name}") for sub in ("bcc", "warm"))
            try:
                fields = ("type", "key_size", "value_size", "max_entries", "map_flags")
                assert [getattr(bpffs.map_info(a), f) for f in fields] == [getattr(bpffs.map_info(b), f)
                                                                            for f in fields], name
            finally:
                os.close(a)
                os.close(b)


def test_a_cache_the_kernel_refuses_falls_back_to_bcc(run_id, tmp_path, monkeypatch):
    from testbed.redirect import bpf_cache, bpf_compile

    monkeypatch.setenv("TESTBED_BPF_CACHE", str(tmp_path / "cache"))
    pins = ebpf.pin_dir(run_id)
    os.makedirs(f"{pins}/a")
    os.makedirs(f"{pins}/b")
    programs = {"getpeername4": ebpf.PROGRAMS["getpeername4"]}
    assert bpf_compile.load_all(run_id, f"{pins}/a", programs)[0] == "compiled"
    entry = bpf_compile.cache_entry()
    record = json.loads((entry / "getpeername4.json").read_text())
    record["insns"] = bpf_cache.base64.b64encode(b"\x95" + b"\x00" * 7 + bytes(8)).decode()  # exit; then junk
    record["refs"] = []
    (entry / "getpeername4.json").write_text(json.dumps(record))
    how, why = bpf_compile.load_all(run_id, f"{pins}/b", programs)
    assert how == "bcc" and "bpf_prog_load" in why
    assert os.path.exists(f"{pins}/b/prog_getpeername4")
