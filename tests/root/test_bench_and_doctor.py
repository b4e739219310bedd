"""`testbed doctor` and `testbed bench redirect`, as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from testbed.cluster import netns

from ..conftest import ROOT, TESTBED, tb

pytestmark = pytest.mark.root


def test_doctor_passes_and_loads_every_program():
    r = tb("doctor", timeout=300)
    for prog in ("connect4", "getpeername4", "sockops", "getsockopt", "sk_msg", "sk_lookup"):
        assert f"[ok  ] BPF program bpf/{prog}.c: loads" in r.stdout
    assert "Envoy 1.40" in r.stdout and r.stdout.strip().endswith("all checks passed")
    assert not [n for n in netns.list_tagged("tb-doctor")]


def test_doctor_without_root_fails_with_a_hint():
    if not shutil.which("runuser"):
        pytest.skip("runuser is not available to drop privileges")
    r = subprocess.run(["runuser", "-u", "nobody", "--"] + TESTBED + ["doctor"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1
    assert "[FAIL] running as root" in r.stdout and "hint: run it as root" in r.stdout


def test_bench_redirect_writes_results_with_intervals_and_ratios(tmp_path):
    out = tmp_path / "bench"
    r = tb("bench", "redirect", "--arch", "sidecar", "--repeat", "2", "--seconds", "1", "--warmup", "0.5",
           "--rate", "40", "--out", out, timeout=600)
    assert "ebpf/iptables" in r.stdout
    result = json.loads((out / "redirect.json").read_text())
    assert set(result["variants"]) == {"none/ebpf", "none/iptables", "sidecar/ebpf", "sidecar/iptables"}
    for paths in result["variants"].values():
        for m in paths.values():
            assert 0 < m["p50"]["low"] <= m["p50"]["median"] <= m["p50"]["high"] <= m["p99"]["high"]
            assert m["rps"]["median"] > 20
    assert set(result["ratios"]) == {"none", "sidecar"}
    for svg in ("redirect-p50.svg", "redirect-p99.svg"):
        assert ET.parse(out / svg).getroot().tag.endswith("svg")
    assert not netns.list_tagged("tb-b")
