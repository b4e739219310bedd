"""The labs without root: every lab is complete and its check.yaml valid against its own
cluster, its README's steps can be read back (tests/root/test_labs.py runs them), and a
check.yaml with mistakes is refused with file, line and field. Journal checks work on a
journal alone."""

from __future__ import annotations

import json

import pytest

from testbed.errors import SpecError
from testbed.experiment import load_experiment
from testbed.labs import catalog
from testbed.labs.checks import describe, load_checks
from testbed.labs.steps import extract, found, problems
from testbed.labs.verify import verify
from testbed.spec import load_cluster

LABS = catalog.labs()


def test_there_are_six_labs_each_complete():
    assert [lab.number for lab in LABS] == [1, 2, 3, 4, 5, 6]
    for lab in LABS:
        checks = lab.checks()  # validated against the lab's cluster: names must exist
        assert checks.lab == lab.number and checks.run == f"lab{lab.number}"
        assert checks.title == lab.title(), (checks.title, lab.title())
        text = lab.readme.read_text()
        for section in ("**Goal.**", "## Steps", "## Check your work", "## What you should see, and questions",
                        "## Clean up"):
            assert section in text, (lab.number, section)
        steps = extract(text)
        work = [s for s in steps if not s.cleanup]
        assert any(checks.start in s.script for s in work), "a step builds the run the check looks at"
        assert work[-1].script.strip() == f"testbed lab check {lab.number} --run lab{lab.number}"
        assert f"all {len(checks.checks) + 1} checks hold" in work[-1].expect
        assert steps[-1].cleanup and f"testbed down --run lab{lab.number}" in steps[-1].script
        assert all(s.expect or s.cleanup for s in steps), "every step says what the student should see"
        for exp in lab.dir.glob("experiment.yaml"):
            assert load_experiment(exp).cluster == load_cluster(lab.cluster)


STEPS = """# Lab 9: x

```sh
not a step
```

```sh lab-step
echo one
echo two
```

Some prose.

```text expect
one
t...o
! three
```

```sh lab-step exit=1 timeout=30
false
```

```sh lab-cleanup
echo bye
```
"""


def test_steps_are_read_with_their_expected_output():
    steps = extract(STEPS)
    assert [s.script for s in steps] == ["echo one\necho two", "false", "echo bye"]
    first, second, last = steps
    assert first.expect == ["one", "t...o"] and first.refuse == ["three"] and first.line == 7
    assert (second.exit, second.timeout, second.expect) == (1, 30.0, [])
    assert last.cleanup and not first.cleanup
    assert problems(first, 0, "one\ntwo\n") == []
    assert problems(first, 2, "one\nthree") == ["exit code 2, the README says 0", "missing: 't...o'",
                                                "present, and should not be: 'three'"]
    assert found("run lab1 is up: 2 nodes ... in ...", "run lab1 is up:  2 nodes, 5 pods, 3 services in 4.1s")
    assert not found("a ... b", "a\nb")  # within one line


def _checks(tmp_path, body: str):
    path = tmp_path / "check.yaml"
    path.write_text("lab: 1\ntitle: t\nrun: lab1\nstart: testbed up x\nchecks:\n" + body)
    return path


@pytest.mark.parametrize("body, problem", [
    ("  - pods: up\n", "check.yaml:6: checks[0].hint: expected text"),
    ("  - {pods: down, hint: h}\n", "check.yaml:6: checks[0].pods: expected `up`"),
    ("  - {pods: up, call: {from: a, to: b, expect: answered}, hint: h}\n",
     "check.yaml:6: checks[0]: name exactly one kind of check"),
    ("  - {call: {from: cart-9, to: cart, expect: answered}, hint: h}\n",
     "check.yaml:6: checks[0].call.from: unknown pod 'cart-9'"),
    ("  - {call: {from: cart-0, to: cart, expect: maybe}, hint: h}\n",
     "check.yaml:6: checks[0].call.expect: 'maybe' is not an outcome (answered, refused)"),
    ("  - {counter: {pod: cart-0, name: bytes}, hint: h}\n",
     "check.yaml:6: checks[0].counter.name: 'bytes' is not a counter"),
    ("  - {proxy: {serving: cart-0, role: gateway}, hint: h}\n",
     "check.yaml:6: checks[0].proxy.role: 'gateway' is not a proxy role"),
    ("  - hint: h\n    journal:\n      dir: out\n      expect:\n        - {fault: 0, field: flows_affected}\n",
     "check.yaml:10: checks[0].journal.expect[0]: expected {arch, min|max|equals} or {larger: ARCH, than: ARCH}"),
    ("  - {capture: {pod: cart-0, from: frontend-0, plaintext: yes please}, hint: h}\n",
     "check.yaml:6: checks[0].capture.plaintext: expected true or false"),
])
def test_a_check_file_with_mistakes_is_refused_with_file_line_and_field(tmp_path, body, problem):
    cluster = load_cluster(catalog.lab(1).cluster)
    with pytest.raises(SpecError) as err:
        load_checks(_checks(tmp_path, body), cluster)
    assert any(p.endswith(problem) or problem in p for p in err.value.problems), err.value.problems


def test_journal_checks_work_on_a_journal_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    checks = catalog.lab(4).checks()
    out = tmp_path / "out" / "lab4"
    out.mkdir(parents=True)

    def fault(served, flows):
        return {"kind": "proxy-crash", "target": {"kind": "pod", "name": "cart-0"}, "at": 2, "pods_served": served,
                "flows_affected": flows, "proxies_hit": 1}

    journal = {"journal": 2, "experiment": "lab4-crash", "started": "now", "architectures": {
        "sidecar": {"status": "completed", "faults": [fault(1, 3)]},
        "node": {"status": "completed", "faults": [fault(3, 5)]}}}
    (out / "journal.json").write_text(json.dumps(journal))
    results = verify(checks, "lab4", tmp_path)
    assert [r.ok for r in results] == [False, False, False, False, True, False]
    assert results[0].detail.startswith("no run lab4") and "testbed up labs/4-crash" in results[0].hint
    assert results[1].detail == "not checked: run lab4 is not up"
    assert results[4].detail == "sidecar pods_served 1; node pods_served 3; flows_affected: node 5, sidecar 3"
    assert results[5].detail.startswith(f"missing: no journal in {tmp_path}/out/lab4-rerun")
    journal["architectures"]["node"]["faults"] = [fault(3, 2)]
    journal["architectures"]["sidecar"]["status"] = "failed"
    (out / "journal.json").write_text(json.dumps(journal))
    detail = verify(checks, "lab4", tmp_path)[4].detail
    assert detail == ("missing: sidecar failed; node's flows_affected above sidecar's "
                      "(flows_affected: node 2, sidecar 3)")


def test_each_kind_of_check_says_what_it_asserts():
    said = {c.kind: describe(c) for lab in LABS for c in lab.checks().checks}
    assert said["pods"] == "every pod is up (its namespace exists, its agent answers)"
    assert said["capture"] == "a capture on cart-0's veth shows plaintext HTTP when frontend-0 calls it"
    assert set(said) == {"pods", "proxy", "counter", "call", "capture", "journal"}
