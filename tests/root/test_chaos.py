"""Chaos experiments, end to end through `testbed run`, on a cluster where node n1 hosts 3
pods of 2 service accounts (web-0; api-0 and db-0, which share `backend`)."""

from __future__ import annotations

import json
import re
import signal
import subprocess

import pytest

from testbed import spec

from ..conftest import FIXTURES, ROOT, TESTBED, tb
from .leftovers import nothing_left, snapshot

pytestmark = pytest.mark.root
MESH = FIXTURES / "mesh.yaml"
SPEC = spec.load_cluster(MESH)
FLOWS = [(p.name, dst) for p in SPEC.pods for dst in SPEC.calls_from(p.service)]


def run_experiment(tmp_path, body: str, archs: list[str]) -> dict:
    exp = tmp_path / "experiment.yaml"
    exp.write_text(f"name: t\ncluster: {MESH}\narchitectures: [{', '.join(archs)}]\n" + body)
    out = tmp_path / "out"
    r = tb("run", exp, "--out", out, timeout=900)
    assert "clean window" in r.stdout
    journal = json.loads((out / "journal.json").read_text())
    for arch, result in journal["architectures"].items():
        assert result["clean_after"]["requests"] > 0 and result["clean_after"]["failed"] == 0, arch
        assert nothing_left(result["run"])
    return journal


def expected_affected(served: set[str]) -> int:
    """A flow is hurt when its source's proxy is down, or one of its destination's pods is."""
    return sum(src in served or any(p.name in served for p in SPEC.pods if p.service == dst) for src, dst in FLOWS)


def test_crash_hang_and_stolen_identity_blast_radius_follows_the_architecture(tmp_path):
    """Three faults aimed at db-0, one after the other, in three architectures: the crash and
    the hang hurt the flows through the proxy serving db-0; the stolen keys hurt nothing, and
    open exactly what the accounts that proxy held may reach."""
    journal = run_experiment(tmp_path, """traffic: {rate: 10, duration: 16s}
faults:
  - {kind: proxy-crash, target: {pod: db-0}, at: 3s, duration: 3s, restartDelay: 3s}
  - {kind: proxy-hang, target: {pod: db-0}, at: 9s, duration: 2s}
  - {kind: identity-compromise, target: {pod: db-0}, at: 13s, duration: 2s}
""", ["sidecar", "node", "node-sa"])
    served = {"sidecar": {"db-0"}, "node": {"web-0", "api-0", "db-0"}, "node-sa": {"api-0", "db-0"}}
    td = "spiffe://cluster.local/ns/default/sa/"
    exposed = {"sidecar": ["backend"], "node-sa": ["backend"], "node": ["backend", "web"]}
    for arch, result in journal["architectures"].items():
        crash, hang, stolen = result["faults"]
        assert crash["proxies_hit"] == 1 and set(crash["pods_served_list"]) == served[arch]
        assert crash["pods_served"] == len(served[arch])
        assert crash["flows_total"] == len(FLOWS) == 6
        assert crash["flows_affected"] == expected_affected(served[arch]), (arch, crash["flows"])
        assert crash["requests_failed"] > 0 and crash["time_to_detect"] is not None
        assert hang["flows_affected"] == expected_affected(served[arch]), (arch, hang["flows"])
        assert stolen["identities_exposed"] == [td + sa for sa in exposed[arch]]
        allowed = sorted([td + SPEC.service(c.source).service_account, c.target] for c in SPEC.calls
                         if SPEC.service(c.source).service_account in exposed[arch])
        assert sorted(stolen["reachable_pairs"]) == allowed, arch
        assert stolen["flows_affected"] == 0  # stealing keys breaks nothing: that is what makes it dangerous
    assert [journal["architectures"][a]["faults"][0]["flows_affected"] for a in ("sidecar", "node-sa", "node")] \
        == [2, 4, 5]


def test_upgrades_drain_or_cut_the_long_lived_connections_through_the_rolled_proxies(tmp_path):
    """A hot restart drains: every app connection through a rolled proxy is closed after an
    answer and no request is lost. A plain restart cuts those same connections. Which
    connections those are is the architecture's doing: the api pods' own (sidecar), or
    every pod's on the nodes of api (node)."""
    journal = run_experiment(tmp_path, """traffic: {rate: 10, duration: 16s}
faults:
  - {kind: upgrade, target: {service: api}, strategy: hot-restart, at: 3s, duration: 5s}
  - {kind: upgrade, target: {service: api}, strategy: restart, at: 10s, duration: 5s}
""", ["sidecar", "node"])
    for arch, result in journal["architectures"].items():
        hot, cold = result["faults"]
        assert len(hot["details"]["upgrades"]) == hot["proxies_hit"] == 2
        through = sorted(f"{src}->{dst}" for src, dst in FLOWS if src in hot["pods_served_list"])
        assert len(through) == {"sidecar": 2, "node": 4}[arch]
        assert hot["requests_failed"] == 0 and hot["flows_affected"] == 0, (arch, hot["flows"])
        ll = hot["long_lived"]
        assert (ll["flows_broken"], ll["drained"], ll["cut"]) == (through, len(through), 0), (arch, ll)
        ll = cold["long_lived"]
        assert ll["flows_broken"] == through and ll["drained"] == 0 and ll["cut"] >= len(through), (arch, ll)
        assert ll["broken_in_baseline"] == 0


def test_a_looping_wasm_extension_hurts_the_neighbours_of_a_shared_proxy_only(tmp_path):
    """The extension is attached to db's traffic at the proxy serving db-0. It loops: with one
    worker thread, that Envoy stops serving anything. A sidecar takes only db-0 down; node-n1's
    shared proxy takes every flow through n1 with it."""
    journal = run_experiment(tmp_path, """traffic: {rate: 10, duration: 12s}
faults:
  - {kind: wasm, target: {pod: db-0}, behavior: loop, failurePolicy: closed, at: 3s, duration: 5s}
""", ["sidecar", "node"])
    sidecar, node = (journal["architectures"][a]["faults"][0] for a in ("sidecar", "node"))
    assert sidecar["flows_affected"] == 2 and sidecar["pods_affected"] == ["api-0", "api-1"]
    assert sidecar["services_affected"] == ["db"]
    assert node["flows_affected"] == expected_affected({"web-0", "api-0", "db-0"}) == 5
    assert set(node["services_affected"]) == {"api", "audit", "db"}


def test_packet_drop_on_a_pods_interface_is_felt_by_its_callers(tmp_path):
    journal = run_experiment(tmp_path, """traffic: {rate: 10, duration: 10s}
faults:
  - {kind: drop, target: {pod: db-0}, percent: 60, at: 3s, duration: 4s}
""", ["node"])
    (f,) = journal["architectures"]["node"]["faults"]
    assert f["details"]["dropped"] > 0 and f["details"]["passed"] > 0
    assert f["interfaces"][0].endswith("/p-db-0")
    assert {"api-0->db", "api-1->db"} <= {name for name, flow in f["flows"].items() if flow["affected"]}


def test_tcp_resets_kill_the_targets_live_connections_and_nothing_else(tmp_path):
    """The sidecars' pooled mTLS connections into db-0 are reset; Envoy reconnects, so few
    requests (if any) fail, and none outside the flows into db."""
    journal = run_experiment(tmp_path, """traffic: {rate: 10, duration: 10s}
faults:
  - {kind: tcp-reset, target: {pod: db-0}, at: 3s, duration: 4s}
""", ["sidecar"])
    (f,) = journal["architectures"]["sidecar"]["faults"]
    assert f["details"]["rsts_sent"] > 0 and f["details"]["connections_reset"] > 0
    failing = {name for name, flow in f["flows"].items() if flow["fault"]["failed"]}
    assert failing <= {"api-0->db", "api-1->db"}


def test_delay_on_a_pods_interface_slows_its_callers_by_the_round_trip(tmp_path):
    """100 ms each way on db-0's eth0: every request into db crosses it twice."""
    journal = run_experiment(tmp_path, """traffic: {rate: 10, duration: 9s}
faults:
  - {kind: delay, target: {pod: db-0}, latency: 100ms, at: 3s, duration: 4s}
""", ["sidecar"])
    (f,) = journal["architectures"]["sidecar"]["faults"]
    assert f["details"]["packets_delayed"] > 0 and 95 <= f["details"]["mean_hold_ms"] <= 150, f["details"]
    assert f["interfaces"] == [f"tb-{journal['architectures']['sidecar']['run']}-p-db-0/eth0"]
    hit = {name for name, flow in f["flows"].items() if flow["affected"]}
    assert hit == {"api-0->db", "api-1->db"}, f["flows"]
    for name in hit:
        assert f["flows"][name]["fault"]["p99_ms"] >= 200 > 2 * f["flows"][name]["baseline"]["p99_ms"]
    assert journal["architectures"]["sidecar"]["clean_after"]["p99_ms"] < 100  # reverted: the delay is gone


def test_ctrl_c_during_an_experiment_reverts_the_faults_and_leaves_nothing(tmp_path):
    """Interrupted while a delay and a tcp-reset are active (workers in the namespaces,
    iptables rules, an RST sniffer): every fault is reverted, then the run torn down."""
    exp = tmp_path / "experiment.yaml"
    exp.write_text(f"""name: t
cluster: {MESH}
architectures: [sidecar]
traffic: {{rate: 5, duration: 30s}}
faults:
  - {{kind: delay, target: {{pod: db-0}}, at: 2s, duration: 20s}}
  - {{kind: tcp-reset, target: {{pod: web-0}}, at: 2s, duration: 20s}}
""")
    p = subprocess.Popen(TESTBED + ["run", str(exp), "--out", str(tmp_path / "out")], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id, lines = None, []
    for line in p.stderr:
        lines.append(line)
        if m := re.search(r"building \(run (\w+)\)", line):
            run_id = m.group(1)
        if "inject tcp-reset" in line:
            break
    assert run_id and p.poll() is None, lines
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out, "".join(lines) + err)
    assert "interrupted" in err
    assert nothing_left(run_id), snapshot(run_id)
