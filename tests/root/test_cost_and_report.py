"""Cost measured for real, and the report drawn from a real run's journal: a short
experiment with a cost window, a crash and a stolen identity in sidecar and node (and the
`none` baseline, added because cost is measured)."""

from __future__ import annotations

import json

import pytest

from testbed import journal, runner, spec
from testbed.experiment import CostSpec
from testbed.measure import costrun
from testbed.measure.blast import Window, blast_radius, cutoff, fault_window
from testbed.report.model import build

from ..conftest import FIXTURES, tb
from .leftovers import nothing_left

pytestmark = pytest.mark.root
MESH = FIXTURES / "mesh.yaml"
SPEC = spec.load_cluster(MESH)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cost") / "out"
    exp = out.parent / "experiment.yaml"
    exp.write_text(f"""name: costs
cluster: {MESH}
architectures: [sidecar, node]
traffic: {{rate: 10, duration: 10s}}
cost: {{totalRate: 150, seconds: 3s, idle: 1s}}
faults:
  - {{kind: proxy-crash, target: {{pod: db-0}}, at: 3s, restartDelay: 2s}}
  - {{kind: identity-compromise, target: {{pod: web-0}}, at: 6s, duration: 2s}}
""")
    tb("run", exp, "--out", out, timeout=600)
    return out


def test_the_journal_has_a_cost_section_per_architecture_and_the_baseline(run_dir):
    j = journal.load(run_dir)
    assert list(j["architectures"]) == ["none", "sidecar", "node"]
    for arch, r in j["architectures"].items():
        assert r["status"] == "completed" and nothing_left(r["run"])
        c = r["cost"]
        assert c["load"]["measured_rps"] > 100 and c["load"]["failed"] == 0
        assert c["steady"]["workloads"] > 0 and c["memory"]["pods"] == len(SPEC.pods)
        if arch == "none":
            assert c["proxies_count"] == 0 and c["steady"]["proxies"] == 0
            continue
        assert c["proxies_count"] == {"sidecar": 6, "node": 3}[arch]
        assert all(p["pss_kib"] > 1000 and p["rss_kib"] > p["pss_kib"] for p in c["proxies"])
        assert c["steady"]["proxies"] > c["idle"]["proxies"] * c["steady"]["seconds"] / c["idle"]["seconds"]
        assert c["vcpu_per_krps"]["proxies"] > 0 and 0 < c["proxy_share"] < 1
        for p in c["proxies"]:  # read from each Envoy's own config_dump
            assert p["config"]["listeners"] >= 2 and p["config"]["clusters"] >= 2 and p["config"]["secrets"] >= 1
        assert {h["hops"] for h in c["hops"].values()} == {2}
        assert set(c["latency_added_ms"]) == {"p50", "p90", "p99"}


def test_a_node_proxy_costs_less_memory_than_the_sidecars_it_replaces(run_dir):
    """n1 hosts 3 pods: one node proxy against three sidecars there. Our measurements say the
    node architecture's total PSS is lower; if one ever says otherwise, this says so."""
    j = journal.load(run_dir)
    side, node = (j["architectures"][a]["cost"]["memory"]["pss_mib"] for a in ("sidecar", "node"))
    assert node < side, f"measured: node {node} MiB of PSS, sidecar {side} MiB: the expectation does not hold"


def test_the_fault_figures_are_those_the_records_give(run_dir):
    j = journal.load(run_dir)
    for arch in ("sidecar", "node"):
        r = j["architectures"][arch]
        records = [json.loads(line) for line in (run_dir / r["files"]["requests"]).read_text().splitlines()]
        crash = r["faults"][0]
        flows = [(p.name, d) for p in SPEC.pods for d in SPEC.calls_from(p.service)]
        window = fault_window(crash["injected_at"], crash["duration"], crash["ended_at"])
        again = blast_radius(records, flows, Window(1.0, 3.0), window, crash["ended_at"],
                             end=cutoff(3.0, [3.0, 6.0], 10))
        for key in ("flows_affected", "requests_failed", "time_to_recover", "pods_affected"):
            assert again[key] == crash[key], (arch, key)


def test_the_report_shows_the_journals_figures(run_dir, tmp_path):
    r = tb("report", run_dir, "--out", tmp_path)
    assert "Failure isolation" in r.stdout and "Overhead: memory" in r.stdout
    page = (tmp_path / "report.html").read_text()
    assert '<table id="scorecard">' in page and page.count("<svg") >= 5
    rows = {row.key: row for row in build([run_dir]).scorecard}
    j = journal.load(run_dir)
    for arch in ("sidecar", "node"):
        assert rows["failure"].cells[arch].value == j["architectures"][arch]["faults"][0]["flows_affected"]
        assert rows["security"].cells[arch].value == len(j["architectures"][arch]["faults"][1]["identities_exposed"])
        assert rows["memory"].cells[arch].value == j["architectures"][arch]["cost"]["memory"]["pss_per_pod_mib"]
    assert rows["security"].cells["node"].value > rows["security"].cells["sidecar"].value
    assert rows["feature"].missing and "wasm" in rows["feature"].missing


def test_proxy_cpu_rises_with_the_load(run_id):
    """The same sidecar mesh at 20 and at 200 requests/s: its proxies' cgroups must use more
    CPU at the higher rate (not a re-statement: the kernel's counters say so)."""
    tb("up", MESH, "--arch", "sidecar", "--run-id", run_id)
    try:
        cluster, mesh = runner.cluster_of(run_id), runner.mesh_of(run_id)
        low, _ = costrun.measure(cluster, mesh, CostSpec(20, 3, 1), cluster.run.dir / "low")
        high, _ = costrun.measure(cluster, mesh, CostSpec(200, 3, 1), cluster.run.dir / "high")
    finally:
        tb("down", "--run", run_id)
    assert high["load"]["measured_rps"] > 5 * low["load"]["measured_rps"]
    assert high["steady"]["proxies"] > 3 * low["steady"]["proxies"], (low["steady"], high["steady"])
    assert high["steady"]["workloads"] > low["steady"]["workloads"]
