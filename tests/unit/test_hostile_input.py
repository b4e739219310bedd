"""Any bytes in, a clear message out: `FILE:LINE: FIELD: what is wrong`, never a traceback,
never a hang. A seeded fuzzer mutates the shipped specs and experiments, and a corpus holds
the cases that once crashed or hung the parsers (alias bombs, tags, FIFOs, huge numbers)."""

from __future__ import annotations

import os
import random
import re
import shutil
import time
from pathlib import Path

import pytest

from testbed.errors import SpecError
from testbed.specfile import load_any

from ..conftest import FIXTURES, ROOT

MESSAGE = re.compile(r"^\S.*?:\d+: \S+: \S")
SEEDS = sorted([*ROOT.glob("experiments/*.yaml"), *ROOT.glob("experiments/clusters/*.yaml"),
                *FIXTURES.glob("*.yaml"), *FIXTURES.glob("experiments/*.yaml")])
HOSTILE = [b"!!python/object/apply:os.system ['true']", b"!foo x", b"!!int abc", b"!!bool maybe", b"!!timestamp x",
           b"2024-13-45", b"9" * 5000, b"&a [*a]", b".inf", b"-.inf", b".nan", b"1e9", str(10 ** 400).encode(),
           b"[x]", b"{a: 1}", b'"\\0"', b"~", b"-1", b"0", b"yes", b"1:30", b"0x1F", b'"a b"', b"a" * 10000, b"{",
           b"[", b"*b", b"&b x", b"'", b'"', b"\xff\xfe", b"\x00", b"1e400", b"99999999999999999999999s"]


def check(path: Path) -> list[str]:
    """Validate; return the problems (empty when valid). Fails on anything but a clear
    message, and on taking 2 s or more."""
    t0 = time.monotonic()
    try:
        load_any(path)
        problems = []
    except SpecError as exc:
        problems = exc.problems
    took = time.monotonic() - t0
    assert took < 2.0, f"{path} took {took:.2f}s"
    assert problems is not None
    for p in problems:
        assert MESSAGE.match(p), f"not FILE:LINE: FIELD: message: {p!r}"
    return problems


def mutate(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 3)):
        lines = data.split(b"\n")
        op = rng.randrange(8)
        if op == 0:
            words = list(re.finditer(rb"[\w.\-]+", data))
            if words:
                m = rng.choice(words)
                data = data[:m.start()] + rng.choice(HOSTILE) + data[m.end():]
        elif op == 1:
            del lines[rng.randrange(len(lines))]
            data = b"\n".join(lines)
        elif op == 2:
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            data = b"\n".join(lines)
        elif op == 3:
            i = rng.randrange(len(data) + 1)
            data = data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 4))) + data[i:]
        elif op == 4 and data:
            i = rng.randrange(len(data))
            data = data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
        elif op == 5:
            data = data[:rng.randrange(len(data) + 1)]
        elif op == 6:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
        else:
            i = rng.randrange(len(lines))
            lines[i] = b"  " * rng.randint(0, 3) + lines[i].lstrip()
            data = b"\n".join(lines)
    return data


@pytest.fixture
def workdir(tmp_path):
    """Experiments name their cluster by a relative path: keep the shipped clusters beside."""
    shutil.copytree(ROOT / "experiments" / "clusters", tmp_path / "clusters")
    return tmp_path


def test_two_thousand_mutations_of_the_shipped_specs_give_clear_messages(workdir):
    rng = random.Random(20261127)
    seeds = [p.read_bytes() for p in SEEDS]
    refused = 0
    for n in range(2000):
        path = workdir / f"m{n % 10}.yaml"
        path.write_bytes(mutate(rng, rng.choice(seeds)))
        refused += bool(check(path))
    assert refused > 1000  # the mutations do break things: the messages above were checked


CLUSTER = """name: c
nodes: [n1, n2]
services:
  - {name: a, port: 8080, replicas: 2}
  - {name: b, port: 9090}
calls:
  - {from: a, to: b}
"""


def experiment(faults: str, archs: str = "[sidecar, node]", traffic: str = "{rate: 5, duration: 30s}",
               extra: str = "") -> str:
    return f"name: e\ncluster: c.yaml\narchitectures: {archs}\ntraffic: {traffic}\n{extra}faults:\n{faults}"


CORPUS = {
    "invalid-utf8": b"name: \xff\xfe\nnodes: [n1]\n",
    "python-tag": b"name: !!python/object/apply:os.system ['true']\nnodes: [n1]\n",
    "local-tag": b"name: !foo x\n",
    "int-tag": b"nodes: !!int abc\n",
    "bool-tag": b"name: c\nnodes: [n1]\nservices: [{name: a, port: 1, l7: !!bool maybe}]\n",
    "timestamp-tag": b"name: !!timestamp x\n",
    "bad-date": b"name: 2024-13-45\nnodes: [n1]\nservices: [{name: a, port: 80}]\n",
    "huge-int": b"name: c\nnodes: [n1]\nservices: [{name: a, port: " + b"9" * 5000 + b"}]\n",
    "recursive-alias": b"name: &a [*a]\n",
    "alias-bomb": (b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                   b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                   b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                   b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
                   b"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"),
    "deep-flow": b"name: " + b"[" * 2000 + b"]" * 2000 + b"\n",
    "deep-block": "".join(f"{' ' * i}k{i}:\n" for i in range(400)).encode(),
    "nul": b"name: c\x00\n",
    "kind-list": experiment("  - {kind: [x], target: {pod: a-0}, at: 2s}\n").encode(),
    "duration-inf": experiment("  - {kind: proxy-hang, target: {pod: a-0}, at: 2s, duration: .inf}\n").encode(),
    "traffic-1e9": experiment("", traffic="{rate: 5, duration: 1e9}").encode(),
    "traffic-inf": experiment("", traffic="{rate: .inf, duration: .inf}").encode(),
    "restart-inf": experiment("  - {kind: proxy-crash, target: {pod: a-0}, at: 2s, restartDelay: .inf}\n").encode(),
    "duration-10e400": experiment(f"  - {{kind: proxy-hang, target: {{pod: a-0}}, at: {10 ** 400}}}\n").encode(),
    "affected-nan": experiment("", extra="affected: {errorPoints: .nan, latencyFactor: .inf}\n").encode(),
    "none-only-crash": experiment("  - {kind: proxy-crash, target: {pod: a-0}, at: 2s}\n", archs="[none]").encode(),
    "overlapping-identity": experiment("  - {kind: identity-compromise, target: {pod: a-0}, at: 2s, duration: 5s}\n"
                                       "  - {kind: identity-compromise, target: {service: a}, at: 4s, duration: 5s}\n"
                                       ).encode(),
    "overlapping-drop": experiment("  - {kind: drop, target: {pod: b-0}, at: 2s, duration: 5s}\n"
                                   "  - {kind: drop, target: {node: n1}, at: 3s, duration: 5s}\n").encode(),
    "reset-same-at": experiment("  - {kind: tcp-reset, target: {pod: a-0}, at: 2s}\n"
                                "  - {kind: tcp-reset, target: {pod: a-0}, at: 2s}\n").encode(),
    "nodes-256": ("name: c\nnodes: [" + ", ".join(f"n{i}" for i in range(256)) +
                  "]\nservices: [{name: a, port: 80}]\n").encode(),
    "nodes-40000": ("name: c\nnodes: [" + ", ".join(f"n{i}" for i in range(40000)) +
                    "]\nservices: [{name: a, port: 80}]\n").encode(),
    "cluster-nul": b"name: e\ncluster: \"c\\0.yaml\"\ntraffic: {duration: 10s}\n",
    "cluster-fifo": b"name: e\ncluster: fifo\ntraffic: {duration: 10s}\n",
    "cluster-dev": b"name: e\ncluster: /dev/zero\ntraffic: {duration: 10s}\n",
    "cluster-dir": b"name: e\ncluster: .\ntraffic: {duration: 10s}\n",
    "cluster-huge": b"name: e\ncluster: huge.yaml\ntraffic: {duration: 10s}\n",
    "empty": b"",
    "comments-only": b"# nothing\n",
    "scalar": b"hello\n",
    "list": b"- a\n- b\n",
    "odd-keys": b"name: c\n'a b': 1\n? [x]\n: 2\n\"\": 3\n",
}


@pytest.fixture
def corpus_dir(tmp_path):
    (tmp_path / "c.yaml").write_text(CLUSTER)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "huge.yaml").write_bytes(b"# " + b"x" * (2 * 1024 * 1024) + b"\n")
    return tmp_path


@pytest.mark.parametrize("case", list(CORPUS))
def test_each_known_hostile_case_is_refused_with_a_located_message(corpus_dir, case):
    path = corpus_dir / f"{case}.yaml"
    path.write_bytes(CORPUS[case])
    problems = check(path)
    assert problems, f"{case} was accepted"
    assert any(p.startswith(f"{path}:") for p in problems), problems


def test_the_messages_say_what_is_wrong(corpus_dir):
    def only(case):
        path = corpus_dir / f"{case}.yaml"
        path.write_bytes(CORPUS[case])
        return "\n".join(check(path))

    assert "anchors (&) and aliases (*) are not allowed" in only("alias-bomb")
    assert "tags" in only("python-tag")
    assert "not UTF-8" in only("invalid-utf8")
    assert "nested deeper than" in only("deep-flow")
    assert "not a regular file (a FIFO)" in only("cluster-fifo")
    assert "too large" in only("cluster-huge")
    assert "at most 198" in only("nodes-256")
    assert "more than 30000 YAML tokens" in only("nodes-40000")
    assert "acts on proxies, and the only architecture is none" in only("none-only-crash")
    assert "overlaps faults[0]" in only("overlapping-drop")
    assert "overlaps faults[0]" in only("reset-same-at")
    assert "traffic.duration: expected a duration like 40s, at least 2s and at most 3600s" in only("traffic-1e9")


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: c\nname: d\nnodes: [n1]\nservices: [{name: a, port: 99999}]\n"
                    "mesh: {concurrency: 0, connectTimeout: 1h, trustDomain: 'A B'}\n")
    text = "\n".join(check(path))
    for field in ("name: duplicate key", "services[0].port", "mesh.concurrency", "mesh.connectTimeout",
                  "mesh.trustDomain"):
        assert field in text, text


def test_an_experiment_given_as_a_cluster_and_the_reverse_are_named(tmp_path):
    from testbed.experiment import load_experiment
    from testbed.spec import load_cluster

    exp = ROOT / "experiments" / "blast-radius.yaml"
    with pytest.raises(SpecError) as err:
        load_cluster(exp)
    assert len(err.value.problems) == 1 and "this is an experiment" in err.value.problems[0]
    assert "testbed run" in err.value.problems[0]
    with pytest.raises(SpecError) as err:
        load_experiment(ROOT / "experiments" / "clusters" / "shop.yaml")
    assert len(err.value.problems) == 1 and "this is a cluster spec" in err.value.problems[0]


def test_architecture_limits_are_refused_before_anything_is_built(tmp_path):
    """Over 100 waypoints (service accounts with L7 services) do not fit ambient's port plan;
    90 accounts on one node are the most node-sa fits."""
    services = "\n".join(f"  - {{name: s{i}, port: 8080}}" for i in range(101))
    (tmp_path / "c.yaml").write_text(f"name: c\nnodes: [n1]\nservices:\n{services}\n")
    path = tmp_path / "e.yaml"
    path.write_text("name: e\ncluster: c.yaml\narchitectures: [sidecar, node-sa, ambient]\ntraffic: {duration: 10s}\n")
    text = "\n".join(check(path))
    assert "architectures: ambient would place 101 waypoints" in text
    assert "node-sa would place 101 proxies on node n1" in text
    assert "sidecar" not in text
