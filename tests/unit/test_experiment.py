"""Experiment specs: the shipped ones load; bad ones name file, line and field."""

from __future__ import annotations

import pytest

from testbed.errors import SpecError
from testbed.experiment import load_experiment, parse_duration

from ..conftest import FIXTURES, ROOT

SHIPPED = sorted((ROOT / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_experiments_load(path):
    exp = load_experiment(path)
    assert (exp.faults or exp.cost) and exp.cluster.name == "shop"
    assert all(f.at + f.duration <= exp.duration for f in exp.faults)


def test_proxy_crash_experiment_fields():
    exp = load_experiment(ROOT / "experiments" / "proxy-crash.yaml")
    (f,) = exp.faults
    assert (f.kind, f.target.kind, f.target.name, f.at, f.duration) == ("proxy-crash", "pod", "cart-0", 10, 12)
    assert f.options == {"restartDelay": 5.0} and exp.rate == 20 and exp.baseline_end == 10


@pytest.mark.parametrize("fixture, line, field, words", [
    ("bad_kind.yaml", 5, "faults[0].kind", "unknown fault kind 'proxy-explode'"),
    ("bad_target.yaml", 6, "faults[0].target.pod", "unknown pod 'cart-9'"),
    ("bad_field.yaml", 8, "faults[0].restartDelay", "unknown field"),
    ("late_fault.yaml", 7, "faults[0].at", "after the traffic"),
])
def test_bad_experiment_names_file_line_and_field(fixture, line, field, words):
    path = FIXTURES / "experiments" / fixture
    with pytest.raises(SpecError) as err:
        load_experiment(path)
    assert any(p.startswith(f"{path}:{line}: {field}") and words in p for p in err.value.problems), err.value.problems


def test_inline_cluster_and_ambient_proxy_target():
    exp = load_experiment(FIXTURES / "experiments" / "inline.yaml")
    assert exp.cluster.name == "tiny" and "name: tiny" in exp.cluster_text
    assert exp.faults[0].at == 1.5 and exp.faults[0].target.proxy == "l7" and exp.duration == 60


def _delay(tmp_path, fields: str):
    p = tmp_path / "delay.yaml"
    p.write_text(f"name: d\ncluster: {ROOT}/experiments/clusters/shop.yaml\ntraffic: {{duration: 20s}}\n"
                 f"faults:\n  - {{kind: delay, target: {{pod: cart-0}}, at: 5s{fields}}}\n")
    return load_experiment(p)


def test_delay_takes_a_latency_and_a_jitter(tmp_path):
    assert _delay(tmp_path, "").faults[0].options == {}
    assert _delay(tmp_path, ", latency: 20ms, jitter: 5ms").faults[0].options == {"latency": 0.02, "jitter": 0.005}


@pytest.mark.parametrize("fields, message", [
    (", latency: 0ms", r"delay.yaml:5: faults\[0\].latency: .*above 0"),
    (", latency: 6s", r"faults\[0\].latency: .*at most 5s"),
    (", latency: fast", r"faults\[0\].latency: expected a duration"),
    (", latency: 10ms, jitter: 20ms", r"faults\[0\].jitter: the jitter \(20ms\) is larger than the latency \(10ms\)"),
    (", percent: 3", r"faults\[0\].percent: unknown field"),
])
def test_bad_delay_fields_are_refused_with_file_line_and_field(tmp_path, fields, message):
    with pytest.raises(SpecError, match=message):
        _delay(tmp_path, fields)


def test_durations():
    assert [parse_duration(v) for v in ("10s", "1.5m", "250ms", 3, "x", True)] == [10, 90, 0.25, 3, None, None]
