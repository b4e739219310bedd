"""A lab's `check.yaml`: what must hold once a student has done the lab's steps, declared as
data. Pure: loading one touches nothing, and a bad one is refused with `FILE:LINE: FIELD`,
its pod and service names checked against the lab's own cluster spec.

    lab: 3
    title: One proxy per node
    run: lab3                                   # the run the README builds
    start: testbed up labs/3-node-proxy/cluster.yaml --arch node --run-id lab3
    checks:
      - pods: up                                # every pod's namespace exists, its agent answers
        hint: ...                               # every check says what to do when it fails
      - proxy: {serving: cart-0, role: node, minServes: 2, minRestarts: 1, minIdentities: 2}
      - counter: {pod: frontend-0, name: redirected, min: 1}     # a BPF redirect counter risen
      - call: {from: frontend-0, to: cart, expect: answered}     # or refused
      - capture: {pod: cart-0, from: frontend-0, plaintext: true}  # on the pod's veth
      - journal:                                # an experiment the student ran ({run}: the run id)
          dir: out/{run}
          completed: [sidecar, node]
          expect:
            - {arch: node, fault: 0, field: pods_served, equals: 3}   # or min, max
            - {fault: 0, field: flows_affected, larger: node, than: sidecar}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import yamlsrc
from ..checker import Checker
from ..errors import SpecError
from ..mesh.topology import ARCHITECTURES, ROLES
from ..redirect.ebpf import InboundStats, Stats
from ..spec import ClusterSpec

# what `testbed bpf stats` shows per pod: the programs' counters, and the inbound ones
COUNTERS = tuple(f for f, _ in Stats._fields_) + tuple(f"inbound_{f}" for f, _ in InboundStats._fields_)
FAULT_FIELDS = ("proxies_hit", "pods_served", "flows_affected", "requests_failed", "identities_exposed",
                "reachable_pairs")  # the last two are lists: their length counts
KINDS = {  # kind -> (required fields, optional fields); `pods` takes the word `up`
    "pods": None,
    "proxy": ({"serving"}, {"role", "minServes", "minRestarts", "minIdentities"}),
    "counter": ({"pod", "name"}, {"min"}),
    "call": ({"from", "to", "expect"}, set()),
    "capture": ({"pod", "from", "plaintext"}, set()),
    "journal": ({"dir"}, {"completed", "expect"}),
}
BOUNDS = ("min", "max", "equals")


@dataclass(frozen=True)
class Check:
    kind: str
    args: dict
    hint: str
    line: int


@dataclass(frozen=True)
class LabChecks:
    lab: int
    title: str
    run: str
    start: str  # the command that builds the lab's run: the hint when it is not up
    checks: tuple[Check, ...]
    source: str


def load_checks(path: str | Path, cluster: ClusterSpec | None = None) -> LabChecks:
    problems: list[str] = []
    data = yamlsrc.load(path, problems)
    ck = Checker(str(path), problems)
    top = ck.mapping(data, getattr(data, "line", 1), "", {"lab", "title", "run", "start", "checks"}, set())
    if top is None:
        raise SpecError(ck.problems)
    lab = ck.integer(top.get("lab"), top.line_of("lab"), "lab", 1, 99)
    for key in ("title", "run", "start"):
        if key in top and not isinstance(top[key], str):
            ck.fail(top.line_of(key), key, "expected text")
    checks = []
    items = ck.sequence(top.get("checks"), top.line_of("checks"), "checks") if "checks" in top else None
    for i, item in enumerate(items or []):
        check = _check(ck, item, items.line_of(i), f"checks[{i}]", cluster)
        if check is not None:
            checks.append(check)
    if ck.problems:
        raise SpecError(ck.problems)
    return LabChecks(lab, top["title"], top["run"], top["start"], tuple(checks), str(path))


def _check(ck: Checker, item, line: int, where: str, cluster: ClusterSpec | None) -> Check | None:
    item = ck.mapping(item, line, where, {"hint"}, set(KINDS))
    if item is None:
        return None
    kinds = [k for k in item if k in KINDS]
    if len(kinds) != 1:
        ck.fail(item.line, where, f"name exactly one kind of check ({', '.join(KINDS)}), got {len(kinds)}")
        return None
    kind = kinds[0]
    at, here, value = item.line_of(kind), f"{where}.{kind}", item[kind]
    if not isinstance(item.get("hint"), str):
        ck.fail(item.line_of("hint"), f"{where}.hint", "expected text: what to do when the check fails")
    if kind == "pods":
        if value != "up":
            ck.fail(at, here, "expected `up`")
        return Check(kind, {}, item.get("hint", ""), at)
    required, optional = KINDS[kind]
    args = ck.mapping(value, at, here, required, optional)
    if args is None:
        return None
    names = {"serving": "pod", "pod": "pod", "from": "pod", "to": "service"}
    for key, what in names.items():
        if key in args and cluster is not None:
            known = [p.name for p in cluster.pods] if what == "pod" else [s.name for s in cluster.services]
            if args[key] not in known:
                ck.fail(args.line_of(key), f"{here}.{key}", f"unknown {what} {args[key]!r} (the lab's: "
                                                            f"{', '.join(known)})")
    for key in ("minServes", "minRestarts", "minIdentities", "min"):
        if key in args:
            ck.integer(args[key], args.line_of(key), f"{here}.{key}", 0, 10 ** 9)
    if "role" in args:
        ck.choice(args["role"], args.line_of("role"), f"{here}.role", ROLES, "a proxy role")
    if kind == "counter":
        ck.choice(args.get("name"), args.line_of("name"), f"{here}.name", COUNTERS, "a counter")
    if kind == "call":
        ck.choice(args.get("expect"), args.line_of("expect"), f"{here}.expect", ("answered", "refused"), "an outcome")
    if kind == "capture" and not isinstance(args.get("plaintext"), bool):
        ck.fail(args.line_of("plaintext"), f"{here}.plaintext", "expected true or false")
    if kind == "journal":
        _journal(ck, args, here)
    return Check(kind, yamlsrc.plain(args), item.get("hint", ""), at)


def _journal(ck: Checker, args, here: str) -> None:
    if not isinstance(args.get("dir"), str):
        ck.fail(args.line_of("dir"), f"{here}.dir", "expected a directory (`{run}` stands for the run id)")
    for i, arch in enumerate(ck.sequence(args["completed"], args.line_of("completed"), f"{here}.completed") or []
                             if "completed" in args else []):
        ck.choice(arch, args["completed"].line_of(i), f"{here}.completed[{i}]", ARCHITECTURES, "an architecture")
    for i, e in enumerate(ck.sequence(args["expect"], args.line_of("expect"), f"{here}.expect") or []
                          if "expect" in args else []):
        w = f"{here}.expect[{i}]"
        e = ck.mapping(e, args["expect"].line_of(i), w, {"fault", "field"}, {"arch", "larger", "than", *BOUNDS})
        if e is None:
            continue
        ck.integer(e.get("fault"), e.line_of("fault"), f"{w}.fault", 0, 99)
        ck.choice(e.get("field"), e.line_of("field"), f"{w}.field", FAULT_FIELDS, "a fault's figure")
        bounds = [b for b in BOUNDS if b in e]
        if ("larger" in e) == bool(bounds) or ("larger" in e) != ("than" in e) or ("arch" in e) != bool(bounds):
            ck.fail(e.line, w, "expected {arch, min|max|equals} or {larger: ARCH, than: ARCH}")
        for key in ("arch", "larger", "than"):
            if key in e:
                ck.choice(e[key], e.line_of(key), f"{w}.{key}", ARCHITECTURES, "an architecture")
        for b in bounds:
            ck.integer(e[b], e.line_of(b), f"{w}.{b}", 0, 10 ** 9)


def describe(check: Check) -> str:
    """What the check asserts, as the summary prints it."""
    a = check.args
    if check.kind == "pods":
        return "every pod is up (its namespace exists, its agent answers)"
    if check.kind == "proxy":
        extra = [f"serving at least {a['minServes']} pods" if "minServes" in a else "",
                 f"holding at least {a['minIdentities']} identities" if "minIdentities" in a else "",
                 f"restarted at least {a['minRestarts']} time(s)" if "minRestarts" in a else ""]
        return ", ".join([f"a {a.get('role', '')} proxy serves {a['serving']}".replace("a  ", "a "), "ready",
                          *[x for x in extra if x]])
    if check.kind == "counter":
        return f"the BPF counter {a['name']} of {a['pod']} has risen (at least {a.get('min', 1)})"
    if check.kind == "call":
        return f"{a['from']} calls {a['to']}: {a['expect']}"
    if check.kind == "capture":
        return (f"a capture on {a['pod']}'s veth shows {'plaintext HTTP' if a['plaintext'] else 'no plaintext'} "
                f"when {a['from']} calls it")
    return f"the experiment's journal in {a['dir']}" + (f": {', '.join(a['completed'])} completed"
                                                         if a.get("completed") else "")
