"""Reproducibility without root: a journal holds enough to rerun it (the experiment, its
cluster inlined, the architectures, the backend), and two runs get a one-line verdict on
whether they agree within noise."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from testbed.cli import main
from testbed.errors import TestbedError
from testbed.report.model import build
from testbed.rerun import default_out, environment_changes, experiment_of

from ..conftest import ROOT
from .test_report import FIGURES, journal

SHOP = (ROOT / "experiments" / "clusters" / "shop.yaml").read_text()
EXPERIMENT = """# a comment the rerun does not need
name: crash
cluster: clusters/shop.yaml
architectures: [sidecar, node]
redirect: iptables
seed: 7
traffic: {rate: 20, duration: 6s}
faults:
  - {kind: proxy-crash, target: {pod: cart-0}, at: 2s, restartDelay: 2s}
"""


def recorded(**changes) -> dict:
    j = {"journal": 2, "engine": "namespaces", "simulated": False, "experiment": "crash", "spec": EXPERIMENT,
         "cluster": SHOP, "architectures": {"node": {}, "sidecar": {}}, "_path": "/far/away/out/crash/journal.json"}
    j.update(changes)
    return j


def test_a_journal_alone_gives_back_its_experiment_with_the_cluster_it_ran_on():
    exp, text, archs, backend = experiment_of(recorded())
    assert exp.name == "crash" and exp.seed == 7 and exp.redirect == "iptables" and exp.duration == 6
    assert [p.name for p in exp.cluster.pods] == ["frontend-0", "frontend-1", "cart-0", "payments-0", "payments-1",
                                                   "payments-2"]
    assert "clusters/shop.yaml" not in text and "name: shop" in text  # inlined: no file needed
    assert archs == ["node", "sidecar"] and backend == "namespaces"
    assert experiment_of(recorded(backend="mininet"))[3] == "mininet"


@pytest.mark.parametrize("changes, words", [
    ({"engine": "kubernetes"}, "a kubernetes journal"),
    ({"engine": "simpy", "simulated": True}, "(simulated)"),
    ({"spec": None}, "does not hold its experiment"),
])
def test_a_journal_that_cannot_be_rerun_says_why(changes, words):
    with pytest.raises(TestbedError, match=r".*" + words.replace("(", r"\(").replace(")", r"\)")):
        experiment_of(recorded(**changes))


def test_the_rerun_goes_beside_the_original_and_names_what_changed_in_the_environment(tmp_path):
    assert default_out("out/lab4/journal.json").as_posix() == "out/lab4-rerun"
    (tmp_path / "x").mkdir()
    assert default_out(tmp_path / "x") == tmp_path / "x-rerun"
    then = {"environment": {"git": "abc", "kernel": "6.18", "envoy": "1.40.0"}}
    assert environment_changes(then, {"git": "abc", "kernel": "6.18", "envoy": "1.40.0"}) == []
    assert environment_changes(then, {"git": "def", "kernel": "6.18", "envoy": "1.40.0"}) == \
        ["git: abc then, def now"]


def test_two_runs_agree_within_noise_or_the_verdict_names_what_differs(tmp_path):
    a = journal(tmp_path / "a")
    same = build([a, journal(tmp_path / "same")]).comparison
    assert same["agree"] and same["verdict"].startswith("the two runs agree within noise")
    noisy = build([a, journal(tmp_path / "noisy", {k: v[:1] + (v[1] + 1,) + v[2:] for k, v in FIGURES.items()})])
    assert noisy.comparison["agree"]  # one more failed request is inside the noise band
    moved = {k: v[:1] + (v[1] + 200,) + v[2:] for k, v in FIGURES.items()}
    far = build([a, journal(tmp_path / "far", moved)]).comparison
    assert not far["agree"] and "beyond the noise" in far["verdict"] and "requests_failed" in far["verdict"]
    counted = {**FIGURES, "node": (4,) + FIGURES["node"][1:]}
    count = build([a, journal(tmp_path / "count", counted)]).comparison
    assert not count["agree"] and "1 count differs" in count["verdict"] and "node fault 0" in count["verdict"]
    fewer = build([a, journal(tmp_path / "fewer", {k: v for k, v in FIGURES.items() if k != "ambient"})])
    assert not fewer.comparison["agree"] and "ambient architecture run" in fewer.comparison["verdict"]
    other = build([a, journal(tmp_path / "other", experiment="another")]).comparison
    assert not other["agree"] and "not the same experiment" in other["verdict"]


def test_report_prints_the_verdict_and_puts_it_in_its_json(tmp_path):
    a, b = journal(tmp_path / "a"), journal(tmp_path / "b")
    r = CliRunner().invoke(main, ["report", str(a), str(b), "--out", str(tmp_path / "ab")])
    assert r.exit_code == 0, r.output
    assert "verdict: the two runs agree within noise" in r.output
    assert "Verdict: the two runs agree within noise" in (tmp_path / "ab" / "report.md").read_text()
    r = CliRunner().invoke(main, ["report", str(a), str(b), "--out", str(tmp_path / "ab"), "--json"])
    got = json.loads(r.output)
    assert got["verdict"]["agree"] is True and got["verdict"]["verdict"].startswith("the two runs agree")


def test_the_report_says_how_to_rerun_a_run():
    from testbed.report.model import rerun_command

    assert rerun_command(recorded()) == "testbed rerun /far/away/out/crash/journal.json"
    assert rerun_command(recorded(spec=None)) == \
        "testbed run /far/away/out/crash/experiment.yaml --arch node --arch sidecar --out /far/away/out/crash-again"
