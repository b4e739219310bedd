"""`testbed simulate` as a user runs it: a journal like a real run's, marked simulated,
that the reader loads and the report draws and labels; scaled clusters beyond one machine."""

from __future__ import annotations

import json

from click.testing import CliRunner

from testbed import journal
from testbed.cli import main
from testbed.report.model import build

from ..conftest import ROOT

AT_SCALE = ROOT / "experiments" / "at-scale.yaml"


def test_simulate_writes_a_journal_marked_simulated_that_the_report_draws(tmp_path):
    out = tmp_path / "sim"
    r = CliRunner().invoke(main, ["simulate", str(AT_SCALE), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "proxy-crash pod=cart-0" in r.output and "next: testbed report" in r.output
    j = journal.load(out)
    assert j["simulated"] is True and j["engine"] == "simpy" and j["status"] == "completed"
    assert list(j["architectures"]) == ["none", "sidecar", "node", "node-sa", "ambient", "ztunnel"]
    assert j["simulation"]["pods"] == 6 and j["simulation"]["hosts"] == "machine"
    node = j["architectures"]["node"]
    assert node["cost"]["proxies_count"] == 3 and node["files"]["timeline"] == "timeline-node.csv"
    crash = node["faults"][0]
    assert crash["kind"] == "proxy-crash" and crash["proxies"] == ["node-n2"] and crash["pods_served"] == 3
    ztunnel = j["architectures"]["ztunnel"]  # n2's L4 proxy, and the 3 waypoints of the shop's accounts
    assert ztunnel["cost"]["proxies_count"] == 6 and ztunnel["faults"][0]["proxies"] == ["ztunnel-n2"]
    assert ztunnel["faults"][1]["proxies"] == ["l7-cart"] and ztunnel["faults"][1]["target"]["proxy"] == "l7"
    assert j["architectures"]["none"]["faults"] == []  # only proxy faults: the baseline measures the cost alone
    r = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "engine simpy (simulated)" in md and "simulated)" in md.split("## Runs")[0]
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Contains simulated runs" in html and "simulated (simpy)" in html
    assert build([out]).runs[0].rerun.startswith("testbed simulate")


def test_a_cluster_beyond_one_machine(tmp_path):
    out = tmp_path / "big"
    r = CliRunner().invoke(main, ["simulate", str(AT_SCALE), "--nodes", "250", "--pods-per-node", "4",
                                  "--services", "20", "--arch", "node", "--arch", "sidecar", "--out", str(out),
                                  "--json"])
    assert r.exit_code == 0, r.output
    j = json.loads(r.output[r.output.index("{"):])
    assert j["simulation"]["nodes"] == 250 > 198 and j["simulation"]["pods"] == 1000
    assert j["simulation"]["hosts"] == "node"
    node = j["architectures"]["node"]["cost"]
    assert node["proxies_count"] == 250 and j["architectures"]["sidecar"]["cost"]["proxies_count"] == 1000
    assert set(node["scoping"]) == {"all", "calls"}
    assert node["scoping"]["calls"]["per_proxy_bytes_max"] < node["scoping"]["all"]["per_proxy_bytes_max"]
    ident = j["architectures"]["node"]["faults"][2]
    assert ident["kind"] == "identity-compromise" and len(ident["identities_exposed"]) == 4  # 4 pods, 4 accounts
    assert journal.load(out)["architectures"]["node"]["faults"][0]["pods_served"] == 4


def test_a_sweep_is_simulated_step_by_step_but_not_scaled(tmp_path):
    cost = ROOT / "experiments" / "calibration" / "cost-pods.yaml"
    r = CliRunner().invoke(main, ["simulate", str(cost), "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    steps = journal.load(tmp_path / "s")["sweep"]["steps"]
    assert [s["pods"] for s in steps] == [3, 12]
    assert steps[1]["architectures"]["sidecar"]["cost"]["proxies_count"] == 12
    r = CliRunner().invoke(main, ["simulate", str(cost), "--nodes", "5", "--out", str(tmp_path / "t")])
    assert r.exit_code == 1 and "a sweep resizes the cluster itself" in r.output
