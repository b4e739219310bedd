"""The simulation's blast radius is measure/blast.py's: on full per-request records made
from the same model, measure.outcome.fault_entry gives what the aggregated computation gives.
And the model's counts on hand-checked placements."""

from __future__ import annotations

import copy
import random
from fractions import Fraction

import pytest

from testbed import spec as specmod
from testbed.experiment import load_experiment
from testbed.measure import blast
from testbed.measure.blast import Window
from testbed.measure.outcome import fault_entry
from testbed.sim import radius
from testbed.sim.flows import Grid
from testbed.sim.model import ArchRun
from testbed.sim.params import load_calibration
from testbed.sim.placement import SimCluster

from ..conftest import FIXTURES, ROOT

PARAMS = load_calibration()
ARCHS = ("sidecar", "node", "node-sa", "ambient", "ztunnel")
BLAST_KEYS = ("flows_total", "flows_affected", "pods_affected", "services_affected", "requests_failed",
              "requests_failed_band", "time_to_detect", "detect_basis", "time_to_recover", "fault_window", "until",
              "measured", "proxies_hit", "pods_served", "injected_at", "reverted_at", "ended_at")


def _experiment(tmp_path, faults: str, cluster=FIXTURES / "mesh.yaml", duration="30s"):
    p = tmp_path / "e.yaml"
    p.write_text(f"name: t\ncluster: {cluster}\ntraffic: {{rate: 10, duration: {duration}}}\nfaults:\n{faults}")
    return load_experiment(p)


def _records(run: ArchRun) -> list[dict]:
    """Every request of every flow, as the agents would have recorded them."""
    out = []
    for i, (src, dst) in enumerate(run.topo.cluster.flows):
        tr = run.traces.get(i)
        changed = dict(zip(tr.t, zip(tr.failed, tr.latency, strict=True), strict=True)) if tr else {}
        for k in range(run.grid.count):
            t = run.grid.t(k)
            failed, lat = changed.get(t, (False, run.normal[i]))
            out.append({"t": t, "src": src, "dst": dst, "pod": None if failed else f"{dst}-0",
                        "status": None if failed else 200, "latency_ms": lat, "error": "reset" if failed else None})
    return out


FAULTS = """  - {kind: proxy-crash, target: {pod: db-0}, at: 3s, restartDelay: 2s}
  - {kind: proxy-hang, target: {pod: api-1}, at: 9s, duration: 2.5s}
  - {kind: wasm, target: {pod: api-0}, at: 15s, duration: 3s}
  - {kind: upgrade, target: {service: web}, strategy: restart, at: 21s, duration: 1s}
  - {kind: proxy-crash, target: {node: n1}, at: 25s, restartDelay: 1s}
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_the_aggregated_blast_radius_is_blast_py_on_full_records(tmp_path, arch):
    exp = _experiment(tmp_path, FAULTS)
    run = ArchRun(exp, SimCluster(exp.cluster), arch, PARAMS, "machine")
    result = run.result()
    records = _records(run)
    flows = run.topo.cluster.flows
    injections = [f.at for f in exp.faults]
    for entry in result["faults"]:
        spec = next(f for f in exp.faults if f.at == entry["at"])
        times = {k: entry[k] for k in ("injected_at", "reverted_at", "ended_at")}
        facts = {k: entry[k] for k in ("proxies_hit", "proxies", "pods_served", "pods_served_list")}
        real = fault_entry(spec, facts, copy.deepcopy(entry["details"]), times, records, [], flows,
                           Window(1.0, exp.baseline_end), injections, exp.duration, exp.error_points,
                           exp.latency_factor)
        for key in BLAST_KEYS:
            assert entry.get(key) == real.get(key), (arch, spec.kind, key)
        assert entry["flows"] == real["flows"], (arch, spec.kind)
    assert any(e["flows_affected"] for e in result["faults"])


def test_p99_without_listing_the_normal_requests_is_blast_pys():
    rng = random.Random(7)
    for _ in range(300):
        normal = round(rng.uniform(5, 30), 3)
        m = rng.randrange(0, 60)
        others = [round(rng.choice([rng.uniform(0.5, 5), rng.uniform(30, 2000)]), 3)
                  for _ in range(rng.randrange(0, 8))]
        assert radius.p99(normal, m, others) == blast._p99([normal] * m + others)


def test_the_schedule_counts_requests_as_the_agents_send_them():
    grid = Grid(10, 30)
    assert grid.count == 300 and grid.t(3) == 0.3
    assert grid.between(3.0, 4.157) == 12  # 3.0, 3.1, ... 4.1
    assert grid.between(34.001, 34.003) == 0 and grid.between(1.0, 3.0) == 20
    assert grid.between(29.95, 40) == 0 and grid.between(0, 40) == 300
    odd = Grid(3, 10)  # 1/3 s apart: 0, 0.3333, 0.6667, 1.0, ...
    assert odd.between(1.0, 2.0) == 3 and odd.first(0.3333) == 1 and odd.first(0.33335) == 2


MESH = specmod.load_cluster(FIXTURES / "mesh.yaml")


def test_hand_checked_counts_of_a_node_proxy_crash(tmp_path):
    """mesh.yaml: n1 holds web-0, api-0 and db-0. Flows (10 a second each): web-0 and web-1
    call api and audit, api-0 and api-1 call db; 6 in all. The node proxy of n1 carries
    web-0's, api-0's and db-0's traffic: 5 flows cross it (web-1 -> audit does not: audit-0
    is on n2, web-1 on n2); web-1 -> api only for api-0's half."""
    exp = _experiment(tmp_path, "  - {kind: proxy-crash, target: {pod: db-0}, at: 3s, restartDelay: 2s}\n",
                      duration="12s")
    got = {a: ArchRun(exp, SimCluster(exp.cluster), a, PARAMS, "machine").result()["faults"][0] for a in ARCHS}
    assert {a: (f["proxies"], f["pods_served"], f["flows_affected"]) for a, f in got.items()} == {
        "sidecar": (["sidecar-db-0"], 1, 2),  # api-0 and api-1 -> db
        "node": (["node-n1"], 3, 5),
        "node-sa": (["node-n1.backend"], 2, 4),  # api-0 and db-0 run as backend: web-* -> api (half), api-* -> db
        "ambient": (["micro-db-0"], 1, 2),
        "ztunnel": (["ztunnel-n1"], 3, 5)}  # n1's L4 proxy: the node proxy's reach
    assert sorted(got["node"]["pods_affected"]) == ["api-0", "api-1", "web-0", "web-1"]
    assert got["node"]["services_affected"] == ["api", "audit", "db"]


def test_a_stolen_identity_exposes_the_keys_the_proxy_holds_and_what_they_may_call(tmp_path):
    exp = _experiment(tmp_path, "  - {kind: identity-compromise, target: {pod: api-0}, at: 3s, duration: 2s}\n",
                      duration="8s")
    got = {a: ArchRun(exp, SimCluster(exp.cluster), a, PARAMS, "machine").result()["faults"][0] for a in ARCHS}
    sa = "spiffe://cluster.local/ns/default/sa/"
    assert got["sidecar"]["identities_exposed"] == [sa + "backend"]
    assert got["node"]["identities_exposed"] == [sa + "backend", sa + "web"]  # n1 holds web-0 and api-0
    # web may call api and audit; backend (api) may call db
    assert got["node"]["reachable_pairs"] == [[sa + "backend", "db"], [sa + "web", "api"], [sa + "web", "audit"]]
    assert got["node-sa"]["reachable_pairs"] == got["sidecar"]["reachable_pairs"] == [[sa + "backend", "db"]]
    # an L4 proxy's keys open the front door (the waypoint) as `calls` allows, never the door around it
    assert got["ambient"]["reachable_pairs"] == [[sa + "backend", "db"]]
    assert got["ztunnel"]["identities_exposed"] == got["node"]["identities_exposed"]
    assert got["ztunnel"]["reachable_pairs"] == got["node"]["reachable_pairs"]
    assert all(f["flows_affected"] == 0 for f in got.values())


@pytest.mark.parametrize("arch", ("ambient", "ztunnel"))
def test_a_stolen_waypoint_identity_opens_the_door_around_its_waypoint(tmp_path, arch):
    """A waypoint holds its own identity, waypoint-<sa>, which no `calls` edge names: the front
    doors refuse it, but the L4 proxies behind that waypoint admit it, and only it
    (chaos/identity.py dials both doors): it reaches every service of the account behind its
    waypoint, and nothing else (audit has `l7: false`, its L4 proxy admits callers only)."""
    exp = _experiment(tmp_path, "  - {kind: identity-compromise, target: {pod: api-0, proxy: l7}, at: 3s, "
                                "duration: 2s}\n", duration="8s")
    f = ArchRun(exp, SimCluster(exp.cluster), arch, PARAMS, "machine").result()["faults"][0]
    wp = "spiffe://cluster.local/ns/default/sa/waypoint-backend"
    assert f["proxies"] == ["l7-backend"] and f["pods_served"] == 3  # api-0, api-1, db-0
    assert f["identities_exposed"] == [wp]
    assert f["reachable_pairs"] == [[wp, "api"], [wp, "db"]]


def test_a_proxy_fault_with_no_proxy_to_act_on_is_not_applicable(tmp_path):
    """As chaos/registry.py records it: `proxy: l7` where no waypoint serves the target (no
    waypoints in node; audit skips its waypoint in ztunnel), or architecture none: never
    injected, not measured, the reason in details, the entry a real run's shape. The other
    faults' windows still end at its `at` (a real run's schedule keeps it)."""
    faults = ("  - {kind: proxy-crash, target: {pod: audit-0, proxy: l7}, at: 3s, restartDelay: 1s}\n"
              "  - {kind: proxy-crash, target: {pod: db-0, proxy: l7}, at: 8s, restartDelay: 1s}\n"
              "  - {kind: drop, target: {pod: db-0}, at: 12s, duration: 1s}\n")
    exp = _experiment(tmp_path, faults, duration="16s")
    got = {a: ArchRun(exp, SimCluster(exp.cluster), a, PARAMS, "machine").result()["faults"]
           for a in ("none", "node", "ztunnel")}
    audit, db = got["ztunnel"][0], got["ztunnel"][1]
    assert audit["measured"] is False and audit["proxies_hit"] == 0
    assert audit["details"] == {"not_applicable": "no proxy of ztunnel serves pod audit-0 (l7 proxy)"}
    assert {k: audit[k] for k in ("injected_at", "reverted_at", "ended_at")} == dict.fromkeys(
        ("injected_at", "reverted_at", "ended_at"))
    assert "flows_affected" not in audit and "model" not in audit
    assert db["measured"] is True and db["proxies"] == ["l7-backend"]
    assert db["flows_affected"] == 4  # web-* -> api, api-* -> db: l7-backend fronts both
    assert all(f["details"]["not_applicable"] == "no proxy of node serves pod " + p + " (l7 proxy)"
               for f, p in zip(got["node"][:2], ("audit-0", "db-0"), strict=True))
    assert [f["details"].get("not_applicable") for f in got["none"][:2]] == \
        ["proxy-crash acts on proxies, and architecture none has no proxy"] * 2
    assert got["none"][2]["simulated"].startswith("not modelled")


def test_none_with_a_cost_window_and_only_proxy_faults_measures_the_cost_alone():
    """experiment_runner.run_arch skips the traffic phase of `none` when no fault applies
    there and a cost window is asked: no fault entry, no timeline."""
    exp = load_experiment(ROOT / "experiments" / "at-scale.yaml")
    run = ArchRun(exp, SimCluster(exp.cluster), "none", PARAMS, "machine")
    result = run.result()
    assert result["faults"] == [] and result["cost"] is not None and not run.traffic_ran


def test_packet_faults_are_said_not_modelled_and_hold_no_figure(tmp_path):
    exp = _experiment(tmp_path, "  - {kind: drop, target: {pod: api-0}, at: 3s, duration: 2s}\n", duration="8s")
    f = ArchRun(exp, SimCluster(exp.cluster), "node", PARAMS, "machine").result()["faults"][0]
    assert f["measured"] is False and f["simulated"].startswith("not modelled")
    assert "flows_affected" not in f and "requests_failed" not in f


def test_a_shared_proxy_stalled_by_an_extension_takes_its_neighbours_down(tmp_path):
    """A looping filter at --concurrency 1 stalls every listener of its proxy: in node, the
    pods sharing it are hit too; in sidecar, only the target's own flows."""
    exp = _experiment(tmp_path, "  - {kind: wasm, target: {pod: api-0}, at: 3s, duration: 3s}\n", duration="12s")
    side, node = (ArchRun(exp, SimCluster(exp.cluster), a, PARAMS, "machine").result()["faults"][0]
                  for a in ("sidecar", "node"))
    assert node["flows_affected"] > side["flows_affected"]
    assert "audit" in node["services_affected"] and "audit" not in side["services_affected"]


def test_the_shop_experiment_uses_calibrated_effects_only():
    exp = load_experiment(ROOT / "experiments" / "calibration" / "faults.yaml")
    for arch in ARCHS:
        for f in ArchRun(exp, SimCluster(exp.cluster), arch, PARAMS, "machine").result()["faults"]:
            if f["details"].get("not_applicable"):  # `proxy: l7` where there is no waypoint
                assert arch not in ("ambient", "ztunnel") and f["target"]["proxy"] == "l7"
                continue
            assert not any("assumed" in k for k in f["model"]["effects"]), (arch, f["kind"], f["model"])


def test_fraction_equality_holds_exactly():
    assert radius.p99(1.0, 0, [0.7]) == Fraction(7, 10)


def test_proxies_restarting_at_once_on_a_crowded_host_take_longer(tmp_path):
    """A crash of node n1 in sidecar restarts its 3 sidecars at once among the run's 6
    Envoys: each is back after the delay plus its role's base, plus the slope per other
    Envoy on the host and per other proxy restarting at once (restarts.py)."""
    exp = _experiment(tmp_path, "  - {kind: proxy-crash, target: {node: n1}, at: 3s, restartDelay: 2s}\n"
                                "  - {kind: proxy-crash, target: {pod: db-0}, at: 10s, restartDelay: 2s}\n",
                      duration="16s")
    node, pod = ArchRun(exp, SimCluster(exp.cluster), "sidecar", PARAMS, "machine").result()["faults"]
    base = PARAMS.crash_restart_s["sidecar"] + 5 * PARAMS.per_host_envoy
    assert pod["ended_at"] - pod["injected_at"] == pytest.approx(2 + base, abs=0.002)
    assert node["ended_at"] - node["injected_at"] == pytest.approx(2 + base + 2 * PARAMS.per_concurrent_restart,
                                                                   abs=0.002)
    spread = ArchRun(exp, SimCluster(exp.cluster), "sidecar", PARAMS, "node").result()["faults"][1]
    assert spread["ended_at"] < pod["ended_at"]  # a node of its own: 3 Envoys share its CPUs, not 6
