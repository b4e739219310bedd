"""`testbed collect`: a Kubernetes run's journal, built from recorded kubectl outputs
(tests/fixtures/k8s/run-sidecar, see its README) with kubectl replaced by a function that
replays them: the same format as a local run's journal, marked `"engine": "kubernetes"`,
with the fault placed where Chaos Mesh says it acted."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from testbed.cli import main
from testbed.errors import TestbedError
from testbed.export import bundle, collect

from ..conftest import FIXTURES, ROOT

RUN = FIXTURES / "k8s" / "run.yaml"
RECORDED = FIXTURES / "k8s" / "run-sidecar"
NAMESPACE = "tb-k8s-run-sidecar"


class Replay:
    """kubectl, as it answered on the recorded run."""

    def __init__(self, recorded=RECORDED, events=True, nodes=True):
        self.recorded, self.events, self.nodes, self.calls = recorded, events, nodes, []

    def __call__(self, args: list[str]) -> str:
        self.calls.append(args)
        if args == ["version", "-o", "json"]:
            return (self.recorded / "version.json").read_text()
        if args == ["config", "current-context"]:
            return (self.recorded / "context.txt").read_text()
        assert args[:2] == ["-n", NAMESPACE], args
        verb = args[2:]
        if verb == ["get", "pods", "-l", "testbed.io/role=traffic", "-o", "json"]:
            return (self.recorded / "pods.json").read_text()
        if verb[0] == "logs":
            assert verb[2:] == ["-c", "client"]
            return (self.recorded / "logs" / f"{verb[1]}.log").read_text()
        if verb == ["get", "workflownodes.chaos-mesh.org", "-l", "chaos-mesh.org/workflow=faults", "-o", "json"]:
            return (self.recorded / "workflownodes.json").read_text() if self.nodes else '{"items": []}'
        if verb == ["get", "events", "-o", "json"]:
            return (self.recorded / "events.json").read_text() if self.events else '{"items": []}'
        raise AssertionError(f"unexpected kubectl {args}")


@pytest.fixture
def exported(tmp_path):
    return bundle.write(bundle.build(RUN), tmp_path / "k8s")


def test_the_journal_of_a_kubernetes_run(exported):
    j = collect.collect(exported, kubectl=Replay())
    assert j["journal"] == 2 and j["engine"] == "kubernetes" and j["experiment"] == "k8s-run"
    assert j["kubernetes"]["context"] == "kind-testbed" and j["kubernetes"]["server"] == "v1.33.1"
    assert j["traffic"] == {"rate": 5.0, "duration": 12.0, "longLivedInterval": 0.2}
    a = j["architectures"]["sidecar"]
    assert a["engine"] == "kubernetes" and a["dataplane"] == "istio-sidecar" and a["run"] == NAMESPACE
    assert a["requests"] == a["traffic"]["expected_requests"] == 300  # 5 flows, 5/s, 12 s
    assert a["traffic"]["pods"] == 3 and a["traffic"]["skew_s"] < 1 and a["traffic"]["warnings"] == []
    assert a["clean_after"]["requests"] == 75 and a["clean_after"]["failed"] == 0


def test_the_crash_is_where_chaos_mesh_put_it(exported):
    crash, hang = collect.collect(exported, kubectl=Replay())["architectures"]["sidecar"]["faults"]
    starts = [json.loads(line)["start"] for log in (RECORDED / "logs").iterdir()
              for line in log.read_text().splitlines() if '"kind": "start"' in line]
    applied = [e for e in json.loads((RECORDED / "events.json").read_text())["items"] if e["reason"] == "Applied"]
    injected = collect._epoch(applied[0]["firstTimestamp"])
    assert crash["at"] == round(injected - min(starts), 3) and crash["details"]["timing"] == "observed"
    assert crash["details"]["timeline_from"] == "events" and crash["details"]["scheduled_at"] == 4.0
    assert crash["proxies_hit"] == 2 and crash["details"]["hit"] == [
        f"{NAMESPACE}/cart-6f9c7d5b8-x2k4q/istio-proxy", f"{NAMESPACE}/traffic-cart-0-m2x8d/istio-proxy"]
    # the blast radius, from the recorded requests: cart went away for 1.5 s
    assert crash["flows_total"] == 5 and crash["flows_affected"] == 2
    assert crash["pods_affected"] == ["frontend-0", "frontend-1"] and crash["services_affected"] == ["cart"]
    assert crash["requests_failed"] == 16
    # 5 requests/s: a 3 s window holds 15 < 20 requests, too few to time detection or
    # recovery (docs/experiments.md, "Metrics"); the counts above do not need that
    assert crash["time_to_detect"] is None and crash["time_to_recover"] is None
    assert crash["long_lived"]["broken"] == 2 and crash["long_lived"]["closed"] == 2
    assert crash["long_lived"]["broken_in_baseline"] == 0
    assert hang["omitted"].startswith("Chaos Mesh cannot stop") and hang["flows_affected"] is None


def test_same_shape_as_a_local_journal(exported):
    """Every key a local run's journal has, so reports read both; the journal reader takes it."""
    from testbed import journal

    j = collect.collect(exported, kubectl=Replay())
    assert {"journal", "experiment", "source", "started", "environment", "seed", "redirect", "traffic",
            "affected", "spec", "cluster", "architectures", "status", "engine"} <= set(j)
    assert journal.loads(json.dumps(j))["engine"] == "kubernetes"
    a = j["architectures"]["sidecar"]
    assert {"architecture", "run", "faults", "requests", "clean_after"} <= set(a)
    assert {"kind", "target", "at", "duration", "description", "proxies_hit", "proxies", "pods_served",
            "pods_served_list", "flows_total", "flows_affected", "pods_affected", "services_affected",
            "requests_failed", "time_to_detect", "time_to_recover", "flows", "long_lived", "identities_exposed",
            "reachable_pairs", "details"} <= set(a["faults"][0])
    json.dumps(j)  # all of it serialisable


def test_without_events_the_workflow_nodes_place_the_fault(exported):
    crash = collect.collect(exported, kubectl=Replay(events=False))["architectures"]["sidecar"]["faults"][0]
    node = next(n for n in json.loads((RECORDED / "workflownodes.json").read_text())["items"]
                if n["spec"]["templateName"] == "chaos-0-0")
    assert crash["details"]["timeline_from"] == "workflow" and crash["details"]["hit"] == []
    assert crash["proxies_hit"] == 1  # what the export aimed at: istio-proxy of cart-0
    first = json.loads((RECORDED / "logs" / "traffic-frontend-0-7vq2n.log").read_text().splitlines()[0])
    assert crash["at"] == pytest.approx(collect._epoch(node["spec"]["startTime"]) - first["start"], abs=0.5)


def test_with_no_timeline_at_all_the_schedule_stands(exported):
    journal = collect.collect(exported, kubectl=Replay(events=False, nodes=False))
    crash = journal["architectures"]["sidecar"]["faults"][0]
    assert crash["details"]["timing"] == "scheduled" and crash["at"] == 4.0


def test_logs_that_are_not_records_are_counted_not_fatal():
    traffic = collect.parse_logs({"p-1": '{"kind": "start", "src": "a-0", "start": 5.0}\nnot json\n\n'
                                          '{"kind": "request", "t": 5.1, "src": "a-0", "dst": "b", "status": 200}\n'})
    assert traffic.starts == {"a-0": 5.0} and len(traffic.requests) == 1
    assert traffic.warnings == ["p-1: its log has no end record (the pod did not finish, or its log was cut)",
                                "1 log lines were not records"]


def test_an_architecture_that_did_not_run_is_skipped_or_refused(tmp_path):
    out = bundle.write(bundle.build(RUN), tmp_path / "k8s")
    empty = tmp_path / "empty"
    shutil.copytree(RECORDED, empty)
    (empty / "pods.json").write_text('{"items": []}')
    with pytest.raises(TestbedError, match="no architecture of .* has run in this cluster"):
        collect.collect(out, kubectl=Replay(empty))
    with pytest.raises(TestbedError, match="no traffic pods in namespace tb-k8s-run-sidecar"):
        collect.collect(out, ["sidecar"], kubectl=Replay(empty))
    with pytest.raises(TestbedError, match="not exported in .*: node"):
        collect.collect(out, ["node"], kubectl=Replay())


def test_a_pod_without_a_log_is_a_warning(exported):
    class OneLost(Replay):
        def __call__(self, args):
            if args[2:4] == ["logs", "traffic-cart-0-m2x8d"]:
                raise TestbedError("container \"client\" in pod is waiting to start")
            return super().__call__(args)

    a = collect.collect(exported, kubectl=OneLost())["architectures"]["sidecar"]
    assert a["requests"] == 240 and a["traffic"]["pods"] == 2
    assert a["traffic"]["warnings"] == ["traffic-cart-0-m2x8d: no log (container \"client\" in pod is waiting to "
                                        "start)"]


def test_only_an_experiment_has_a_run_to_collect(tmp_path):
    out = bundle.write(bundle.build(ROOT / "experiments" / "clusters" / "shop.yaml"), tmp_path / "k8s")
    with pytest.raises(TestbedError, match="exported from a cluster spec"):
        collect.collect(out, kubectl=Replay())
    with pytest.raises(TestbedError, match="is .* a `testbed export k8s` directory"):
        collect.collect(tmp_path, kubectl=Replay())


def test_kubectl_missing_is_said_plainly(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TestbedError, match="kubectl is not installed here"):
        collect.kubectl_runner()(["version"])


def test_cli_writes_the_journal_and_a_table(exported, monkeypatch):
    monkeypatch.setattr(collect, "kubectl_runner", lambda context=None: Replay())
    r = CliRunner().invoke(main, ["collect", str(exported)])
    assert r.exit_code == 0, r.output
    journal = json.loads((exported / "journal.json").read_text())
    assert journal["engine"] == "kubernetes"
    assert "sidecar (istio-sidecar): 300 requests of 300 expected" in r.output
    assert "proxy-crash pod=cart-0" in r.output and "2/5 flows, 16 requests failed" in r.output
    assert "proxy-hang pod=cart-0" in r.output and "left out" in r.output


def test_cli_errors_exit_1(tmp_path):
    r = CliRunner().invoke(main, ["collect", str(tmp_path)])
    assert r.exit_code == 1 and "export.json: cannot read it" in r.output
