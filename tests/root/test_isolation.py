"""The isolation faults end to end, on the mesh tests' cluster: node n1 hosts web-0, api-0 and
db-0 (accounts web and backend). Three experiments serve every test (module fixtures), so
the clusters are built once: the proxy-config faults and a bypass in sidecar and node, a
noisy neighbour in sidecar and node, and a bypass in node-sa and ambient. Each test then
checks one kind: the sidecar keeps the harm to the target's flows, the shared proxies spread
it as placement says, and every revert leaves a clean stretch of traffic."""

from __future__ import annotations

import json

import pytest

from testbed import runner
from testbed.chaos.base import ChaosContext
from testbed.chaos.kinds import BYPASS_WAYS
from testbed.chaos.registry import make_fault
from testbed.cluster.links import netlink
from testbed.experiment import FaultSpec, Target
from testbed.mesh.upgrades import UPGRADE_READY_TIMEOUT

from ..conftest import FIXTURES, tb
from .leftovers import nothing_left
from .test_chaos import FLOWS, SPEC, run_experiment

pytestmark = pytest.mark.root
SERVICE_OF = {p.name: p.service for p in SPEC.pods}
N1 = {"web-0", "api-0", "db-0"}


def names(flows) -> set[str]:
    return {f"{s}->{d}" for s, d in flows}


def touching(pods: set[str]) -> set[str]:
    """Flows from one of these pods, or to a service one of them serves."""
    return names((s, d) for s, d in FLOWS if s in pods or any(SERVICE_OF[p] == d for p in pods))


def hit(fault) -> set[str]:
    return {name for name, f in fault["flows"].items() if f["affected"]}


def failing(fault, points: float = 5.0) -> set[str]:
    """Flows whose error rate rose by more than `points`: the harm of a pool limit, a refused
    config or a failed upgrade is errors. (A flow's p99 over a few seconds also moves with
    whatever else the shared 2-core machine runs; errors do not.)"""
    return {name for name, f in fault["flows"].items()
            if (f["fault"]["error_rate"] or 0) - (f["baseline"]["error_rate"] or 0) > points / 100}


def clean_after_each_revert(out, arch: str, journal: dict, margin: float = 0.5) -> None:
    """No request fails from just after a fault's revert to the next fault (or the end)."""
    faults = journal["architectures"][arch]["faults"]
    records = [json.loads(line) for line in (out / f"requests-{arch}.jsonl").read_text().splitlines()]
    for i, f in enumerate(faults):
        start = f["reverted_at"] + margin
        end = faults[i + 1]["at"] if i + 1 < len(faults) else journal["traffic"]["duration"]
        bad = [r for r in records if start <= r["t"] < end and r["status"] != 200]
        assert not bad, (arch, f["kind"], bad[:3])


@pytest.fixture(scope="module")
def proxy_faults(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy-faults")
    # a baseline of 3 s (30 requests a flow) before the first fault
    journal = run_experiment(tmp, """traffic: {rate: 10, duration: 30s}
faults:
  - {kind: config, target: {pod: api-0}, setting: {maxConnections: 1}, at: 4s, duration: 3s}
  - {kind: config-reject, target: {pod: api-0}, at: 12s, duration: 2.5s}
  - {kind: upgrade, target: {service: api}, strategy: restart, outcome: fails, at: 16s, duration: 3s}
  - {kind: upgrade, target: {service: api}, strategy: canary, outcome: fails, at: 20.5s, duration: 2.5s}
  - {kind: bypass, target: {pod: web-0}, at: 24s, duration: 3s}
""", ["sidecar", "node"])
    return tmp / "out", journal


def test_a_tight_pool_for_api_0_stays_in_its_sidecar_and_spreads_through_the_shared_final_hop(proxy_faults):
    out, journal = proxy_faults
    sidecar, node = (journal["architectures"][a]["faults"][0] for a in ("sidecar", "node"))
    assert sidecar["details"]["proxies"][0]["touched"]["clusters"] == ["out|web", "out|api", "out|db", "out|audit",
                                                                         "in|api"]
    assert "in|final" in node["details"]["proxies"][0]["touched"]["clusters"]  # every n1 pod's inbound
    assert failing(sidecar) <= touching({"api-0"})
    # db-0's callers share n1's final hop with api-0's: api-1->db fails, though it never meets api-0
    assert node["requests_failed"] > 0 and "api-1->db" in failing(node) & set(node["flows_beyond_target"])
    assert failing(node) <= touching(N1)
    for arch in ("sidecar", "node"):
        clean_after_each_revert(out, arch, journal)


def test_a_refused_update_leaves_everyone_its_proxy_serves_without_theirs(proxy_faults):
    _, journal = proxy_faults
    for arch, left in (("sidecar", ["api-0"]), ("node", sorted(N1))):
        f = journal["architectures"][arch]["faults"][1]
        (proxy,) = f["details"]["proxies"]
        assert not proxy["accepted"] and "missing ]" in proxy["envoy_said"], proxy
        assert proxy["rollback"] == "old process kept" and proxy["hot_restart_blocked"]
        assert f["details"]["left_without_update"] == left and f["details"]["updated"] == []
        # the old process served on: the refusal failed nothing. But Envoy takes no hot restart
        # after a failed one: putting the config back is a cold restart, and that fails some
        assert f["failed_split"]["until_revert"] == 0, f["failed_split"]
        assert f["details"]["reverted"][0]["strategy"] == "restart" and f["details"]["reverted"][0]["fallback"]
        assert failing(f) <= touching(set(f["pods_served_list"]))


def test_a_failed_upgrade_is_rolled_back_in_bounded_time_and_a_canary_halts_the_roll(proxy_faults):
    _, journal = proxy_faults
    exposed = {"sidecar": ({"api-0", "api-1"}, {"api-0"}), "node": ({"api-0", "api-1"} | N1, N1)}
    for arch, (rolled, canary) in exposed.items():
        every, first = journal["architectures"][arch]["faults"][2:4]
        assert every["details"]["rolled_back"] == every["proxies"] and not every["details"]["halted"]
        for u in every["details"]["upgrades"]:
            assert u["outcome"] == "rolled-back" and u["detected_s"] < UPGRADE_READY_TIMEOUT
            assert "new_version_field" in u["envoy_said"] and u["rollback"] == "old config restarted"
        assert every["details"]["rollback_s_max"] < UPGRADE_READY_TIMEOUT
        assert set(every["details"]["pods_exposed"]) == rolled and failing(every) <= touching(rolled)
        assert every["requests_failed"] > 0 and every["long_lived"]["cut"] > 0  # a restart cuts
        assert first["details"]["halted"] and len(first["details"]["upgrades"]) == 1
        assert first["details"]["not_tried"] == first["proxies"][1:]
        assert set(first["details"]["pods_exposed"]) == canary and failing(first) <= touching(canary)


def table(fault) -> dict:
    return fault["details"]["reachability"]["web-0"]


def test_no_way_around_the_proxy_reaches_a_pod_in_sidecar_and_node(proxy_faults):
    out, journal = proxy_faults
    for arch in ("sidecar", "node"):
        f = journal["architectures"][arch]["faults"][4]
        assert f["details"]["plaintext"] == [] and f["details"]["reached_plaintext"] == 0
        assert set(table(f)) == set(BYPASS_WAYS)
        assert table(f)["on-link"] == {"api-0": "blocked", "db-0": "blocked"}  # web-0's neighbours on n1
        for way, row in table(f).items():
            assert set(row.values()) <= within(way), (arch, way, row)
            assert set(row) >= {p.name for p in SPEC.pods} - {"web-0"} or way == "on-link"
        assert "nothing of them is the pod's to detach" in f["details"]["notes"]["web-0"]["detached"]


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("noisy")
    cluster = tmp / "mesh.yaml"  # the mesh cluster, its proxies at one worker thread, said out loud
    cluster.write_text((FIXTURES / "mesh.yaml").read_text() + "mesh: {concurrency: 1}\n")
    exp = tmp / "experiment.yaml"
    exp.write_text(f"""name: noisy
cluster: {cluster}
architectures: [sidecar, node]
traffic: {{rate: 10, duration: 12s}}
faults:
  - {{kind: noisy-neighbour, target: {{pod: api-0}}, factor: 100, at: 4s, duration: 5s}}
""")
    out = tmp / "out"
    tb("run", exp, "--out", out, timeout=600)
    journal = json.loads((out / "journal.json").read_text())
    for result in journal["architectures"].values():
        assert result["clean_after"]["requests"] > 0 and result["clean_after"]["failed"] == 0
        assert nothing_left(result["run"])
    return out, journal


def test_a_noisy_neighbour_is_felt_by_whoever_shares_a_proxy_with_it(noisy):
    """api-0 sends 100 times its rate to db. In sidecar the noise crosses api-0's and db-0's
    sidecars only; in node, n1's one proxy, at one worker thread, which carries five of the
    six flows: web-0->audit, which meets neither api-0 nor db, slows with the rest, far more
    than the one flow apart (web-1->audit, on n2) slows with the machine."""
    out, noisy = noisy
    loaded = {"sidecar": ["sidecar-api-0", "sidecar-db-0"], "node": ["node-n1"]}
    for arch, proxies in loaded.items():
        clean_after_each_revert(out, arch, noisy)
        (f,) = noisy["architectures"][arch]["faults"]
        d = f["details"]
        assert d["loaded_proxies"] == proxies and set(d["concurrency"].values()) == {1}
        assert d["noise"]["requests"] > 1000 and d["noise"]["rate_per_flow"] == 990
        for p in proxies:  # the loaded proxies paid for it
            assert d["cpu"]["proxies"][p]["window"] > d["cpu"]["proxies"][p]["baseline"], d["cpu"]
        assert not failing(f), f["flows"]  # noise slows; nothing fails
    sidecar, node = (noisy["architectures"][a]["faults"][0] for a in ("sidecar", "node"))
    assert set(sidecar["details"]["apart_flows"]) == {"web-0->audit", "web-1->audit"}
    assert node["details"]["apart_flows"] == ["web-1->audit"]
    assert not hit(sidecar) & set(sidecar["details"]["apart_flows"]), sidecar["neighbours"]
    # what the machine adds shows in the flow apart; what n1's shared thread adds, in the ratio.
    # (Comparing the ratio across the two runs would compare two moments of a shared machine.)
    assert "web-0->audit" in hit(node) and node["neighbours"]["sharing_over_apart"] > 3, node["neighbours"]


@pytest.fixture(scope="module")
def bypass_shared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bypass")
    return tmp / "out", run_experiment(tmp, """traffic: {rate: 5, duration: 6s}
faults:
  - {kind: bypass, target: {pod: web-0}, at: 1.5s, duration: 3s}
""", ["node-sa", "ambient"])


def test_no_way_around_the_proxy_reaches_a_pod_in_node_sa_and_ambient(bypass_shared):
    out, journal = bypass_shared
    for arch in ("node-sa", "ambient"):
        clean_after_each_revert(out, arch, journal)
        (f,) = journal["architectures"][arch]["faults"]
        assert f["details"]["plaintext"] == [], (arch, f["details"]["plaintext"])
        for way, row in table(f).items():
            assert set(row.values()) <= within(way), (arch, way, row)


def within(way: str) -> set[str]:
    """What a way may meet. eBPF attaches the redirect to the run's pods level, which a pod
    cannot detach: `detached` calls go through the mesh, proxied or denied by the policy
    (web may call api and audit). Every other way is blocked."""
    return {"blocked", "proxied", "denied"} if way == "detached" else {"blocked"}


def test_the_on_link_path_is_open_without_bridge_port_isolation_and_closed_with_it(run_id):
    """The finding the bypass fault made: with an on-link route, web-0 reached api-0 and db-0
    (its neighbours on n1) over the bridge, in plaintext, around the node proxy's capture,
    which sits in the node's routing. Bridge port isolation closes it."""
    runner.up(FIXTURES / "mesh.yaml", "node", run_id=run_id)
    cluster, mesh = runner.cluster_of(run_id), runner.mesh_of(run_id)
    spec = FaultSpec("bypass", Target("pod", "web-0"), 1.0, 1.0, {"ways": ["on-link"]})
    node = cluster.plan.node("n1").netns

    def isolate(on: bool) -> None:
        with netlink(node) as ipr:
            for pod in cluster.plan.pods_on("n1"):
                ipr.brport("set", index=ipr.link_lookup(ifname=pod.host_if)[0], isolated=int(on))

    def attempt(i: int) -> dict:
        f = make_fault(spec, ChaosContext(cluster.plan, cluster, mesh), i)
        f.start()
        f.stop()
        return f.details

    isolate(False)
    try:
        opened = attempt(0)
    finally:
        isolate(True)
    closed = attempt(1)
    assert opened["reachability"]["web-0"]["on-link"] == {"api-0": "plaintext", "db-0": "plaintext"}
    # web may call api, never db: the proxy that would have said 403 was never asked
    assert {(p["to"], p["policy"]) for p in opened["plaintext"]} == {("api-0", "allow"), ("db-0", "deny")}
    assert closed["reachability"]["web-0"]["on-link"] == {"api-0": "blocked", "db-0": "blocked"}
