"""Signals as the CI runner, `timeout` and systemd send them (SIGTERM, SIGHUP), to every
long command: each one undoes what it made, writes what it measured, and exits 128 + the
signal; a second signal during teardown does not abandon it. And after a SIGKILL, which
nothing can catch, `testbed clean` removes the rest."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

from testbed import journal
from testbed.wait import wait_for

from ..conftest import FIXTURES, ROOT, TESTBED, tb
from .leftovers import nothing_left, snapshot

pytestmark = pytest.mark.root
MESH = FIXTURES / "mesh.yaml"


class Command:
    """A CLI command running in the background, its progress (stderr) read as it comes."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(TESTBED + [str(a) for a in args], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self._q.put(line)
        self._q.put(None)

    def wait_for_line(self, pattern: str, timeout: float = 120) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line like {pattern!r} (exit {self.proc.poll()}):\n" + "".join(self.lines))

    def finish(self, timeout: float = 180) -> tuple[int, str]:
        out = self.proc.stdout.read()
        self.proc.wait(timeout)
        while (line := self._q.get(timeout=10)) is not None:
            self.lines.append(line)
        return self.proc.returncode, out + "".join(self.lines)


def test_sigterm_during_up_exits_143_and_leaves_nothing(run_id):
    cmd = Command("up", MESH, "--arch", "sidecar", "--run-id", run_id)
    cmd.wait_for_line("starting 6 Envoy proxies")
    cmd.proc.send_signal(signal.SIGTERM)
    code, output = cmd.finish()
    assert code == 143, output
    assert "interrupted (SIGTERM)" in output
    assert nothing_left(run_id), snapshot(run_id)


def test_sighup_during_up_exits_129_and_a_second_signal_does_not_abandon_the_teardown(run_id):
    cmd = Command("up", MESH, "--arch", "node", "--run-id", run_id)
    cmd.wait_for_line("attaching")
    cmd.proc.send_signal(signal.SIGHUP)
    time.sleep(0.05)  # in the teardown now: these must not cut it short
    for _ in range(3):
        cmd.proc.send_signal(signal.SIGTERM)
        time.sleep(0.02)
    code, output = cmd.finish()
    assert code == 129, output
    assert nothing_left(run_id), snapshot(run_id)


def test_sigterm_during_an_experiment_reverts_writes_the_journal_and_leaves_nothing(tmp_path):
    """The first architecture finishes; SIGTERM arrives in the second while a delay and a
    stolen identity are active. Exit 143, nothing of either run left, and the journal holds
    the first architecture complete and the second marked interrupted, with its records."""
    exp = tmp_path / "experiment.yaml"
    exp.write_text(f"""name: t
cluster: {MESH}
architectures: [sidecar, node]
traffic: {{rate: 5, duration: 12s}}
faults:
  - {{kind: delay, target: {{pod: db-0}}, latency: 30ms, at: 2s, duration: 8s}}
  - {{kind: identity-compromise, target: {{pod: web-0}}, at: 3s, duration: 7s}}
""")
    out = tmp_path / "out"
    cmd = Command("run", exp, "--out", out)
    first = cmd.wait_for_line(r"\[sidecar\] building \(run (\w+)\)").group(1)
    second = cmd.wait_for_line(r"\[node\] building \(run (\w+)\)", timeout=180).group(1)
    cmd.wait_for_line(r"\[node\] t=3s inject identity-compromise", timeout=120)
    time.sleep(1.0)
    cmd.proc.send_signal(signal.SIGTERM)
    code, output = cmd.finish()
    assert code == 143, output
    for rid in (first, second):
        assert nothing_left(rid), snapshot(rid)
    j = journal.load(out)
    assert j["status"] == "interrupted"
    side, node = j["architectures"]["sidecar"], j["architectures"]["node"]
    assert side["status"] == "completed" and side["clean_after"]["failed"] == 0
    assert [f["injected_at"] is not None and f["reverted_at"] is not None for f in side["faults"]] == [True, True]
    assert node["status"] == "interrupted" and node["requests"] > 0
    delay, identity = node["faults"]
    assert delay["injected_at"] is not None and identity["injected_at"] is not None
    assert identity["reachable_pairs"]  # what the attacker reached before the signal is kept
    assert (out / "requests-node.jsonl").read_text().count("\n") == node["requests"] + node["not_sent"]
    assert not (out / ".records" / "node").exists()


def test_sigterm_during_the_demo_exits_143_and_leaves_nothing(tmp_path):
    from testbed.runner import known_runs

    before = known_runs()
    cmd = Command("demo", "--quick", "--out", tmp_path / "demo")
    cmd.wait_for_line(r"\[sidecar\] steady traffic", timeout=180)
    cmd.proc.send_signal(signal.SIGTERM)
    code, output = cmd.finish()
    assert code == 143, output
    assert known_runs() <= before, known_runs() - before
    j = journal.load(tmp_path / "demo")
    assert j["status"] == "interrupted" and j["architectures"]["none"]["status"] == "completed"
    assert j["architectures"]["sidecar"]["status"] == "interrupted"


def test_sigterm_during_bench_redirect_writes_what_was_measured(tmp_path):
    out = tmp_path / "bench"
    cmd = Command("bench", "redirect", "--arch", "sidecar", "--repeat", "6", "--seconds", "1", "--warmup", "0.2",
                  "--rate", "40", "--out", out)
    ids = [cmd.wait_for_line(r"building \S+ \(run (\w+)\)").group(1) for _ in range(4)]
    cmd.wait_for_line(r"repetition 2/6", timeout=120)
    cmd.proc.send_signal(signal.SIGTERM)
    code, output = cmd.finish()
    assert code == 143, output
    for rid in ids:
        assert nothing_left(rid), snapshot(rid)
    result = json.loads((out / "redirect.json").read_text())
    assert result["status"] == "interrupted" and result["repetitions_done"] >= 1
    assert all(len(s) == result["repetitions_done"] for paths in result["samples"].values() for s in paths.values())


def test_sigkill_of_an_experiment_then_clean_leaves_nothing(tmp_path):
    exp = tmp_path / "experiment.yaml"
    exp.write_text(f"""name: t
cluster: {MESH}
architectures: [sidecar]
traffic: {{rate: 5, duration: 30s}}
faults:
  - {{kind: delay, target: {{pod: db-0}}, latency: 30ms, at: 2s, duration: 20s}}
  - {{kind: identity-compromise, target: {{pod: web-0}}, at: 3s, duration: 20s}}
""")
    cmd = Command("run", exp, "--out", tmp_path / "out")
    run_id = cmd.wait_for_line(r"building \(run (\w+)\)").group(1)
    cmd.wait_for_line(r"inject identity-compromise", timeout=120)
    wait_for(lambda: snapshot(run_id)["stolen_keys"], 10, "the keys to be stolen")
    cmd.proc.kill()
    cmd.proc.wait()
    left = snapshot(run_id)
    assert left["namespaces"] and left["stolen_keys"] and left["envoys"]  # something to clean
    r = tb("clean", "--run", run_id, "-v")
    assert "stolen keys" in r.stdout
    assert nothing_left(run_id), snapshot(run_id)


def test_sigkill_during_the_bpf_compile_then_clean_stops_the_compile_workers(run_id, tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_BPF_CACHE", str(tmp_path / "cold"))  # an empty cache: the programs compile
    cmd = Command("up", MESH, "--arch", "sidecar", "--run-id", run_id)
    cmd.wait_for_line("loading the BPF programs")
    time.sleep(0.3)
    cmd.proc.kill()
    cmd.proc.wait()
    workers = [p for p in snapshot(run_id)["processes"]]
    tb("clean", "--run", run_id)
    assert nothing_left(run_id), (workers, snapshot(run_id))


def test_clean_leaves_a_live_experiment_alone_unless_forced(tmp_path):
    exp = tmp_path / "experiment.yaml"
    exp.write_text(f"name: t\ncluster: {MESH}\narchitectures: [node]\ntraffic: {{rate: 5, duration: 25s}}\n")
    cmd = Command("run", exp, "--out", tmp_path / "out")
    run_id = cmd.wait_for_line(r"building \(run (\w+)\)").group(1)
    cmd.wait_for_line("traffic on", timeout=120)
    try:
        r = tb("clean")
        assert f"run {run_id}: left alone, in use by process {cmd.proc.pid}" in r.stdout, r.stdout
        assert snapshot(run_id)["envoys"] and cmd.proc.poll() is None
        r = tb("clean", "--run", run_id)
        assert "left alone" in r.stdout and snapshot(run_id)["envoys"]
    finally:
        cmd.proc.send_signal(signal.SIGTERM)
        code, output = cmd.finish()
    assert code == 143, output
    assert nothing_left(run_id), snapshot(run_id)
