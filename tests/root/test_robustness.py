"""What real use does to a run: a caller's umask of 077 (sudo keeps it), a kill in the
middle of writing the state and the eBPF record, two clean-ups at once."""

from __future__ import annotations

import json
import subprocess

import pytest

from testbed.state import state_dir

from ..conftest import FIXTURES, ROOT, TESTBED, tb
from .leftovers import nothing_left, snapshot

pytestmark = pytest.mark.root


def test_umask_077_then_torn_records_then_two_sweeps_at_once(run_id):
    cmd = " ".join(TESTBED + ["up", str(FIXTURES / "mesh.yaml"), "--arch", "sidecar", "--run-id", run_id])
    r = subprocess.run(["sh", "-c", f"umask 077 && exec {cmd}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert all(e["ok"] for e in json.loads(tb("matrix", "--run", run_id, "--json").stdout))
    # as if killed while writing them: the sweep must not depend on either
    (state_dir() / run_id / "ebpf.json").write_text('{"pins": "/sys/fs/bpf/tb-')
    (state_dir() / run_id / "state.json").write_text('{"status": "up", "archi')
    assert snapshot(run_id)["bpf_programs"]  # attached, and the record naming them is gone
    sweeps = [subprocess.Popen(TESTBED + ["clean", "--run", run_id], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(120), p.stderr.read()) for p in sweeps]
    assert [code for code, _ in results] == [0, 0], results
    assert nothing_left(run_id), snapshot(run_id)
