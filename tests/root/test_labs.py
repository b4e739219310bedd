"""Every lab, end to end as a student does it: the README's steps pasted into a shell one
after the other, each output checked against what the README says the student should see
(the last step is `testbed lab check`, which must pass); then a deliberately broken state,
where `lab check` fails, exits 1 and names what is missing; then the README's clean-up,
which must leave nothing. So the labs cannot rot.

The steps run as the README has them, with one change: every run id `labN` (and `labNs`)
becomes this test's own, so that runs never collide on a shared machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from testbed import runner
from testbed.cluster import cgroups
from testbed.labs import catalog
from testbed.labs.steps import Step, extract, problems

from ..conftest import ROOT
from .leftovers import nothing_left, snapshot

pytestmark = pytest.mark.root
RUN_ID = re.compile(r"\blab(\d)(s?)\b")


class Student:
    """A root shell in the repository with `testbed` on its PATH, as labs/README.md asks."""

    def __init__(self, tmp_path, run_id: str):
        self.run_id = run_id
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "testbed"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m testbed.cli "$@"\n')
        shim.chmod(0o755)
        self.env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT))

    def ours(self, text: str) -> str:
        return RUN_ID.sub(lambda m: self.run_id + m.group(2), text)

    def sh(self, script: str, timeout: float = 120) -> tuple[int, str]:
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", self.ours(script)], cwd=ROOT, env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def step(self, step: Step) -> str:
        code, out = self.sh(step.script, step.timeout)
        mine = Step(step.script, step.line, step.cleanup, step.exit, step.timeout,
                    [self.ours(x) for x in step.expect], [self.ours(x) for x in step.refuse])
        wrong = problems(mine, code, out)
        assert not wrong, f"README line {step.line}:\n{step.script}\n--- {wrong}\n--- output:\n{out}"
        return out

    def status(self) -> dict:
        return runner.status(self.run_id)


def _kill_agent(student: Student, pod: str) -> None:
    os.kill(next(p["pid"] for p in student.status()["pods"] if p["name"] == pod), signal.SIGKILL)


def break_lab_1(student: Student) -> list[str]:
    _kill_agent(student, "cart-0")
    return ["FAIL every pod is up", "missing: cart-0 (its workload agent does not answer)",
            "FAIL frontend-0 calls cart: answered: expected answered, got"]


def break_lab_2(student: Student) -> list[str]:
    """tb_connect4 detached from the run's pods level (attached once, above every pod's
    cgroup): frontend-0's calls to a service address are no longer sent to its sidecar, and
    have nowhere to go."""
    cg = cgroups.path(f"tb-{student.run_id}/pods")
    subprocess.run(["bpftool", "cgroup", "detach", cg, "connect4", "pinned",
                    f"/sys/fs/bpf/tb-{student.run_id}/prog_connect4"], check=True)
    return ["FAIL frontend-0 calls cart: answered: expected answered, got", "is it attached to the run's pods level"]


def break_lab_3(student: Student) -> list[str]:
    """The run rebuilt as a sidecar mesh: no proxy per node, no plaintext on the pod's veth."""
    student.sh("testbed down --run lab3 && testbed up labs/3-node-proxy/cluster.yaml --arch sidecar "
               "--redirect iptables --run-id lab3", timeout=300)
    return ["missing: a node proxy (this run's architecture is sidecar); at least 3 pods served (has 1)",
            "FAIL a capture on cart-0's veth shows plaintext HTTP when frontend-0 calls it: expected plaintext HTTP"]


def rerun_reproduces_the_blast_radius(student: Student) -> None:
    """`testbed rerun` of lab 4's journal: the same counts, architecture by architecture."""
    runs = [json.loads((ROOT / "out" / name / "journal.json").read_text())
            for name in (student.run_id, f"{student.run_id}-rerun")]
    assert runs[1]["rerun_of"].endswith(f"out/{student.run_id}/journal.json")
    assert runs[0]["spec"] and runs[1]["seed"] == runs[0]["seed"] == 1
    for arch in ("sidecar", "node"):
        first, again = (r["architectures"][arch]["faults"][0] for r in runs)
        for key in ("proxies_hit", "pods_served", "pods_served_list", "flows_total", "flows_affected"):
            assert first[key] == again[key], (arch, key, first[key], again[key])


def break_lab_4(student: Student) -> list[str]:
    rerun_reproduces_the_blast_radius(student)
    (ROOT / "out" / student.run_id / "journal.json").unlink()
    return [f"missing: no journal in {ROOT}/out/{student.run_id} (run the lab's experiment step)"]


def break_lab_5(student: Student) -> list[str]:
    """A journal in which the node architecture never ran."""
    path = ROOT / "out" / student.run_id / "journal.json"
    journal = json.loads(path.read_text())
    del journal["architectures"]["node"]
    path.write_text(json.dumps(journal))
    return ["missing: node did not run; node's pods_served equals 3 (got None)"]


def break_lab_6(student: Student) -> list[str]:
    _kill_agent(student, "cart-0")
    return ["missing: cart-0 (its workload agent does not answer)", "FAIL cart-0 calls frontend: refused"]


BREAK = {1: break_lab_1, 2: break_lab_2, 3: break_lab_3, 4: break_lab_4, 5: break_lab_5, 6: break_lab_6}


@pytest.mark.parametrize("number", sorted(BREAK))
def test_a_lab_end_to_end_then_broken(number, run_id, tmp_path):
    lab = catalog.lab(number)
    steps = extract(lab.readme.read_text())
    assert steps and steps[-1].cleanup, "a lab ends with its clean-up"
    student = Student(tmp_path, run_id)
    try:
        for step in (s for s in steps if not s.cleanup):
            student.step(step)
        assert "lab check" in steps[-2].script, "the last step is the lab's check"
        missing = BREAK[number](student)
        code, out = student.sh(f"testbed lab check {number} --run lab{number}")
        assert code == 1 and "hint:" in out, out
        for words in missing:
            assert " ".join(student.ours(words).split()) in " ".join(out.split()), (words, out)
        for step in (s for s in steps if s.cleanup):
            student.step(step)
    finally:
        for rid in (run_id, run_id + "s"):
            runner.clean(rid)
        for out_dir in (ROOT / "out").glob(f"{run_id}*"):
            shutil.rmtree(out_dir, ignore_errors=True)
    assert nothing_left(run_id), snapshot(run_id)
    assert nothing_left(run_id + "s"), snapshot(run_id + "s")


def test_lab_check_json_and_an_unknown_lab(run_id, tmp_path):
    student = Student(tmp_path, run_id)
    code, out = student.sh("testbed lab check 1 --run lab1 --json")  # no such run: every check fails
    assert code == 1
    got = json.loads(out[:out.rindex("}") + 1])
    assert got["ok"] is False and got["results"][0]["what"] == f"run {run_id} is up"
    assert "start it with the lab's first step: testbed up labs/1-namespaces/cluster.yaml" in got["results"][0]["hint"]
    assert all(r["detail"].startswith("not checked") for r in got["results"][1:])
    code, out = student.sh("testbed lab check 99")
    assert code == 1 and "no lab 99 (labs: 1, 2, 3, 4, 5, 6" in out
