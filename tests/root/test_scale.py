"""Scale: a 100-pod sidecar mesh (4 nodes, 10 services, eBPF redirection) comes up, every
flow of the connectivity matrix is answered through the pods' own sidecars, and `down`
leaves nothing. The times are the benchmark's business (benchmarks/bench_scale.py): here
only what must hold at this size."""

from __future__ import annotations

import json

import pytest

from testbed import runner
from testbed.mesh import admin
from testbed.redirect import ebpf
from testbed.synthetic import scale_yaml

from ..conftest import tb
from .leftovers import nothing_left, snapshot

pytestmark = pytest.mark.root


def test_a_100_pod_sidecar_mesh_answers_the_matrix_and_leaves_nothing(run_id, tmp_path):
    spec = tmp_path / "scale.yaml"
    spec.write_text(scale_yaml(4, 10, 100))
    st = json.loads(tb("up", spec, "--arch", "sidecar", "--run-id", run_id, "--json", timeout=300).stdout)
    try:
        assert len(st["pods"]) == 100 and all(p["pid"] for p in st["pods"])
        assert len(st["proxies"]) == 100 and {p["state"] for p in st["proxies"]} == {"ready"}
        assert len({p["uid"] for p in st["proxies"]}) == 100  # a uid, a cgroup, keys of its own each
        plan = runner.cluster_of(run_id).plan
        before = ebpf.stats(plan)["pods"]
        edges = json.loads(tb("matrix", "--run", run_id, "--count", "1", "--json", timeout=300).stdout)
        assert len(edges) == 90 and all(e["ok"] for e in edges), [e for e in edges if not e["ok"]][:3]
        after = ebpf.stats(plan)["pods"]
        callers = {e["from"] for e in edges}
        # each call was redirected to the caller's own sidecar, by the programs attached once to pods/
        assert all(after[p]["redirected"] - before[p]["redirected"] == 1 for p in callers)
        assert {e["to"] for e in edges} == {f"svc{k}" for k in range(1, 10)}
        # mesh.stats (default istio): the server's stats are kept, the per-cluster and
        # per-connection-manager ones never created, though the sidecar carried requests
        sidecar = runner.mesh_of(run_id).topo.serving(edges[0]["from"])
        names = admin.stats(sidecar.netns, sidecar.admin_port)
        assert "server.live" in names and "cluster_manager.active_clusters" in names, sorted(names)[:20]
        assert not [n for n in names if n.startswith(("cluster.", "http.", "listener."))], sorted(names)[:20]
    finally:
        tb("down", "--run", run_id, timeout=300)
    assert nothing_left(run_id), snapshot(run_id)
