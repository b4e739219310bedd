"""Calibration: from journals with records to parameters, checked by a round trip (journals
the model itself wrote, with known parameters, give those parameters back), and the refusal
of anything that is not a calibration of this journal version."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from testbed import journal
from testbed.cli import main
from testbed.errors import TestbedError
from testbed.experiment import load_experiment
from testbed.sim import calibrate as cal
from testbed.sim.model import ArchRun
from testbed.sim.params import DEFAULT_PATH, CalibrationError, Params, load_calibration
from testbed.sim.placement import SimCluster
from testbed.sim.simulate import simulate

from ..conftest import FIXTURES

PARAMS = load_calibration()
EXPERIMENT = f"""name: roundtrip
cluster: {FIXTURES / 'mesh.yaml'}
architectures: [sidecar, node]
traffic: {{rate: 10, duration: 24s}}
cost: {{totalRate: 200, seconds: 4s, idle: 2s}}
faults:
  - {{kind: proxy-crash, target: {{pod: db-0}}, at: 3s, restartDelay: 2s}}
  - {{kind: proxy-hang, target: {{pod: api-0}}, at: 10s, duration: 2.5s}}
  - {{kind: upgrade, target: {{service: web}}, strategy: restart, at: 17s, duration: 1s}}
"""


def _as_if_real(tmp_path):
    """A journal the model wrote, dressed as a real run's: every request recorded."""
    path = tmp_path / "e.yaml"
    path.write_text(EXPERIMENT)
    exp = load_experiment(path)
    out = tmp_path / "run"
    j = simulate(exp, EXPERIMENT, PARAMS, out_dir=out)
    cluster = SimCluster(exp.cluster)
    for arch in ("sidecar", "node"):
        run = ArchRun(exp, cluster, arch, PARAMS, "machine")
        run.result()
        lines = []
        for i, (src, dst) in enumerate(cluster.flows):
            tr = run.traces.get(i)
            changed = dict(zip(tr.t, zip(tr.failed, tr.latency, strict=True), strict=True)) if tr else {}
            for k in range(run.grid.count):
                t = run.grid.t(k)
                failed, lat = changed.get(t, (False, run.normal[i]))
                lines.append(json.dumps({"t": t, "src": src, "dst": dst, "pod": None if failed else f"{dst}-0",
                                         "status": None if failed else 200, "latency_ms": lat, "error": None}))
        (out / f"requests-{arch}.jsonl").write_text("\n".join(lines) + "\n")
        j["architectures"][arch]["files"] = {"requests": f"requests-{arch}.jsonl"}
    j.update(simulated=False, engine="namespaces")
    (out / "journal.json").write_text(json.dumps(j))
    return out


def test_calibration_gives_back_the_parameters_that_made_the_data(tmp_path):
    doc = cal.calibrate([_as_if_real(tmp_path)], prior_path=None)
    p = doc["parameters"]
    assert abs(p["memory"]["shared_kib"]["value"] - PARAMS.shared_kib) < 2  # RSS - PSS = shared (1 - 1/n)
    assert p["memory"]["base_kib"]["fit"]["r2"] > 0.999  # the private part, as the model made it
    fitted = Params(doc)
    for role, envoys in (("sidecar", 6), ("node", 3)):  # a run's proxies share its machine
        assert p["cpu"]["per_krps"][role]["value"] == pytest.approx(PARAMS.cpu_per_krps[role], rel=0.02)
        # one crash per role cannot tell a role's base from the load slope: the time they give must be the same
        assert fitted.time(fitted.crash_restart_s, role, envoys) == \
            pytest.approx(PARAMS.time(PARAMS.crash_restart_s, role, envoys), abs=0.003)
    crash = p["effects"]["crash/sidecar/destination"]
    assert crash["fail"]["value"] == pytest.approx(PARAMS.effects["crash/sidecar/destination"].fail, abs=0.05)
    assert crash["fit"]["failed_replayed"] == crash["fit"]["failed_observed"]
    hang = p["effects"]["hang/node/source"]
    assert hang["served"]["value"] == 1.0 and hang["fail"]["value"] == 0.0
    assert all(e["points"] for e in p["effects"].values() if e.get("source") == "fit")


def test_what_the_journals_do_not_inform_comes_from_the_prior_and_says_so(tmp_path):
    doc = cal.calibrate([_as_if_real(tmp_path)], prior_path=DEFAULT_PATH)
    p = doc["parameters"]
    assert p["cpu"]["per_krps"]["l7"]["source"] == "prior"  # no ambient in these journals
    assert p["cpu"]["per_krps"]["sidecar"]["source"] == "fit"
    assert doc["prior"].startswith("testbed/sim/default-calibration.json")
    assert "crash/l7/l7" in p["effects"] and p["effects"]["crash/l7/l7"]["source"] == "prior"


def test_a_calibration_made_here_loads_and_the_cli_prints_it(tmp_path):
    run = _as_if_real(tmp_path)
    out = tmp_path / "cal.json"
    r = CliRunner().invoke(main, ["calibrate", str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "per_cluster_kib" in r.output and "published: Envoy's docs" in r.output
    assert load_calibration(out).shared_kib > 0


def test_calibrate_refuses_a_simulated_journal(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(EXPERIMENT)
    simulate(load_experiment(path), EXPERIMENT, PARAMS, out_dir=tmp_path / "sim")
    r = CliRunner().invoke(main, ["calibrate", str(tmp_path / "sim"), "--out", str(tmp_path / "c.json")])
    assert r.exit_code == 1 and "a simulated journal: calibrate from real runs only" in r.output


@pytest.mark.parametrize("content, says", [
    ("not json at all", "not a calibration file (not JSON)"),
    ('{"journal": 2, "experiment": "x"}', "a journal, not a calibration"),
    ('{"kind": "something-else"}', "not a calibration file, not a calibration"),
    ('{"kind": "testbed-calibration", "format": 99, "journal_version": 2}', "calibration format 99"),
    ('{"kind": "testbed-calibration", "format": 1, "journal_version": 1}', "made from journals of version 1"),
    ('{"kind": "testbed-calibration", "format": 1, "journal_version": 2, "parameters": {}}', "missing a parameter"),
])
def test_simulate_refuses_what_is_not_a_calibration_of_this_journal_version(tmp_path, content, says):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(CalibrationError, match=says.replace("(", r"\(").replace(")", r"\)")):
        load_calibration(bad)
    r = CliRunner().invoke(main, ["simulate", str(FIXTURES.parent.parent / "experiments" / "at-scale.yaml"),
                                  "--calibration", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and says in r.output and str(bad) in r.output


def test_the_shipped_calibration_says_where_each_figure_came_from():
    doc = json.loads(DEFAULT_PATH.read_text())
    assert doc["journal_version"] == journal.VERSION and doc["from"]
    assert all(not f["journal"].startswith("/") for f in doc["from"])  # no machine paths
    mem = doc["parameters"]["memory"]
    assert mem["per_cluster_kib"]["anchor"].startswith("Envoy's docs")
    assert mem["base_kib"]["points"] and mem["base_kib"]["fit"]["r2"] is not None


def test_a_calibration_without_ztunnel_runs_takes_its_stand_ins_and_says_so():
    """ztunnel renders the micro-proxy's template (CPU and latency per hop: a micro-proxy's)
    and sits at the node (restart times and outage effects: a node proxy's)."""
    doc = json.loads(DEFAULT_PATH.read_text())
    p = doc["parameters"]
    for section in (p["cpu"]["per_krps"], p["cpu"]["idle_vcpu"], *p["latency"]["per_hop_ms"].values(),
                    p["times"]["crash_restart_s"], p["times"]["restart_s"], p["times"]["hot_restart_s"]):
        section.pop("ztunnel", None)
    p["effects"] = {k: e for k, e in p["effects"].items() if "/ztunnel/" not in k}
    got = Params(doc)
    assert got.cpu_per_krps["ztunnel"] == got.cpu_per_krps["micro"]
    assert got.cpu_idle["ztunnel"] == got.cpu_idle["micro"]
    assert got.hop_ms("ebpf", "ztunnel", "p99") == got.hop_ms("ebpf", "micro", "p99")
    assert got.time(got.crash_restart_s, "ztunnel", 7) == got.time(got.crash_restart_s, "node", 7)
    assert got.effect("crash", "ztunnel", "source")[1] == "crash/node/source"
    assert got.stand_ins["cpu.per_krps.ztunnel"] == "micro" and got.stand_ins["times.restart_s.ztunnel"] == "node"
    assert got.stand_ins["latency.per_hop_ms.ebpf.ztunnel"] == "micro"


def test_memory_may_be_fitted_from_some_of_the_runs_only(tmp_path):
    """--memory-from: the private memory and config bytes from these journals' cost windows,
    everything else from all of them; a journal not calibrated from is refused."""
    run = _as_if_real(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    doc = json.loads((run / "journal.json").read_text())
    for r in doc["architectures"].values():  # another run whose proxies weigh 1 MiB more than their counts say
        for p in (r.get("cost") or {}).get("proxies", []):
            p["rss_kib"] += 1024
            p["pss_kib"] += 1024
    (other / "journal.json").write_text(json.dumps(doc))
    for f in run.glob("*.jsonl"):
        (other / f.name).write_text(f.read_text())
    both = cal.calibrate([run, other], prior_path=None)
    narrowed = cal.calibrate([run, other], prior_path=None, memory_from=[run])
    alone = cal.calibrate([run], prior_path=None)
    mem = [{k: v["value"] for k, v in d["parameters"]["memory"].items()} for d in (both, narrowed, alone)]
    assert mem[1] == mem[2] and mem[0] != mem[2]
    config = [d["parameters"]["config_bytes"]["base"]["value"] for d in (narrowed, alone)]
    assert config[0] == config[1]
    assert narrowed["memory_from"] == [str(run / "journal.json")] and both["memory_from"] is None
    assert narrowed["counts"] == both["counts"]  # every run still informs the rest
    with pytest.raises(TestbedError, match="--memory-from"):
        cal.calibrate([run], prior_path=None, memory_from=[other])
