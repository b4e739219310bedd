"""Checking a student's running cluster against a lab's `check.yaml` (`testbed lab check N`).

Every check is tried, whatever the others gave, and each result says what was seen or, when
it fails, what is missing, with the lab's hint. Checks look the way the student did: the
pods' agents and their clients, the mesh's proxies, the BPF counters, a capture on a pod's
veth, an experiment's journal; nothing is changed except the few calls a check makes."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..cluster import agentctl, netns
from ..cluster.backend import make_cluster
from ..errors import TestbedError
from ..journal import load as load_journal
from ..state import Run, list_runs
from .checks import LabChecks, describe

CALLS = 3  # per `call` check: answered means every one answered, refused means none did


@dataclass
class Result:
    what: str
    ok: bool
    detail: str  # what was seen; for a failure, what is missing
    hint: str = ""


class Context:
    """The run being checked, opened lazily: a lab whose run is down still gets its journal
    checks."""

    def __init__(self, run_id: str, cwd: Path):
        self.run_id, self.cwd = run_id, cwd
        self.run = Run(run_id)
        state = self.run.load()
        self.arch = state.get("architecture", "none")
        self.redirect = state.get("redirect")
        self.plan = self.run.plan()
        self.cluster = make_cluster(self.plan, self.run, state.get("backend", "namespaces"))

    def mesh(self):
        from ..mesh.stage import MeshStage

        if self.arch == "none":
            raise TestbedError(f"run {self.run_id} has no mesh (it was built with --arch none)")
        return MeshStage(self.plan, self.run, self.arch, self.redirect)

    def url(self, service: str) -> str:
        svc = self.plan.service(service)
        return f"http://{svc.vip}:{svc.port}/"


class _Offline:
    """What a journal check needs when the run is down: the run id (for `{run}` in a path) and
    where relative paths start."""

    def __init__(self, run_id: str, cwd: Path):
        self.run_id, self.cwd = run_id, cwd


def verify(lab: LabChecks, run_id: str | None = None, cwd: Path | None = None) -> list[Result]:
    """One result for the run itself, then one per check, in order."""
    run_id = run_id or lab.run
    cwd = cwd or Path.cwd()
    try:
        ctx = Context(run_id, cwd) if run_id in list_runs() else None
    except TestbedError as exc:
        ctx, why = None, str(exc)
    else:
        why = f"no run {run_id} (runs: {', '.join(list_runs()) or 'none'})"
    results = [Result(f"run {run_id} is up", ctx is not None,
                      f"{ctx.arch} architecture, {ctx.redirect} redirect, {len(ctx.plan.pods)} pods" if ctx else why,
                      "" if ctx else f"start it with the lab's first step: {lab.start}")]
    for check in lab.checks:
        what = describe(check).replace("{run}", run_id)
        if ctx is None and check.kind != "journal":
            results.append(Result(what, False, f"not checked: run {run_id} is not up", check.hint))
            continue
        try:
            ok, detail = CHECKS[check.kind](ctx or _Offline(run_id, cwd), check.args)
        except Exception as exc:  # noqa: BLE001 - any failure to look is a failed check, said plainly
            ok, detail = False, f"{type(exc).__name__}: {exc}" if not isinstance(exc, TestbedError) else str(exc)
        results.append(Result(what, ok, detail, "" if ok else check.hint))
    return results


def _pods(ctx: Context, _args) -> tuple[bool, str]:
    down = []
    for pod in ctx.plan.pods:
        if not netns.exists(pod.netns):
            down.append(f"{pod.name} (no namespace {pod.netns})")
            continue
        try:
            agentctl.ping(ctx.run.agent_socket(pod.name))
        except Exception:  # noqa: BLE001 - refused, timed out, garbled: not up
            down.append(f"{pod.name} (its workload agent does not answer)")
    if down:
        return False, "missing: " + ", ".join(down)
    return True, f"{len(ctx.plan.pods)} pods, each agent answers"


def _proxy(ctx: Context, a: dict) -> tuple[bool, str]:
    mesh = ctx.mesh()
    proxy = mesh.topo.serving(a["serving"])
    if proxy is None:
        return False, f"no proxy serves {a['serving']} in {ctx.arch}"
    st = mesh.proxy_status().get(proxy.name, {})
    seen = (f"{proxy.name}: role {proxy.role}, {st.get('state') or 'unknown'}, serves {len(proxy.serves)} pods, "
            f"holds {len(proxy.identities)} identities, {st.get('restarts', 0)} restarts")
    missing = []
    if a.get("role") and proxy.role != a["role"]:
        missing.append(f"a {a['role']} proxy (this run's architecture is {ctx.arch})")
    if st.get("state") != "ready":
        missing.append("a ready proxy")
    for key, have, what in (("minServes", len(proxy.serves), "pods served"),
                            ("minIdentities", len(proxy.identities), "identities held"),
                            ("minRestarts", st.get("restarts") or 0, "restarts")):
        if key in a and have < a[key]:
            missing.append(f"at least {a[key]} {what} (has {have})")
    return not missing, seen if not missing else f"missing: {'; '.join(missing)} ({seen})"


def _counter(ctx: Context, a: dict) -> tuple[bool, str]:
    from ..redirect import ebpf

    value = ebpf.stats(ctx.plan)["pods"][a["pod"]].get(a["name"], 0)
    want = a.get("min", 1)
    seen = f"{a['name']} of {a['pod']} is {value}"
    return value >= want, seen if value >= want else f"missing: {seen}, expected at least {want}"


def _outcomes(results: list[dict]) -> str:
    seen = Counter(f"{r['status']} ({r['pod']})" if r["status"] == 200 else
                   f"status {r['status']}" if r["status"] else str(r["error"]) for r in results)
    return ", ".join(f"{k} x{n}" for k, n in seen.items())


def _call(ctx: Context, a: dict) -> tuple[bool, str]:
    results = ctx.cluster.call(a["from"], ctx.url(a["to"]), CALLS)
    answered = sum(r["status"] == 200 for r in results)
    ok = answered == CALLS if a["expect"] == "answered" else answered == 0
    seen = _outcomes(results)
    return ok, seen if ok else f"expected {a['expect']}, got {seen}"


def _capture(ctx: Context, a: dict) -> tuple[bool, str]:
    from ..measure.wire import Capture

    pod = ctx.plan.pod(a["pod"])
    node = ctx.plan.node(pod.node)
    with tempfile.TemporaryDirectory(prefix=f"tb-{ctx.run_id}-lab-") as tmp:
        with Capture(node.netns, pod.host_if, Path(tmp) / "veth.pcap", ctx.run_id, timeout=60) as cap:
            results = ctx.cluster.call(a["from"], ctx.url(pod.service), 4)
        wire = cap.summary()
    if not any(r["status"] == 200 and r["pod"] == pod.name for r in results):
        return False, f"missing: no call from {a['from']} reached {pod.name} ({_outcomes(results)})"
    seen = (f"{wire.payload_packets} packets with data on {pod.host_if}: {len(wire.plaintext_http)} plaintext HTTP, "
            f"{wire.tls_packets} TLS")
    ok = bool(wire.plaintext_http) == a["plaintext"]
    return ok, seen if ok else f"expected {'plaintext HTTP' if a['plaintext'] else 'no plaintext'}: {seen}"


def _journal(ctx, a: dict) -> tuple[bool, str]:
    where = Path(a["dir"].replace("{run}", ctx.run_id))
    where = where if where.is_absolute() else ctx.cwd / where
    if not (where / "journal.json").exists():
        return False, f"missing: no journal in {where} (run the lab's experiment step)"
    j = load_journal(where)
    archs = j["architectures"]
    missing = [f"{arch} {'did not run' if arch not in archs else archs[arch].get('status')}"
               for arch in a.get("completed", []) if archs.get(arch, {}).get("status") != "completed"]
    seen = []
    for e in a.get("expect", []):
        ok, text = _expectation(archs, e)
        (seen if ok else missing).append(text)
    if missing:
        return False, "missing: " + "; ".join(missing)
    return True, "; ".join(seen) or f"{', '.join(archs)} completed"


def _value(archs: dict, arch: str, fault: int, field: str):
    faults = archs.get(arch, {}).get("faults") or []
    if fault >= len(faults):
        return None
    value = faults[fault].get(field)
    return len(value) if isinstance(value, list) else value


def _expectation(archs: dict, e: dict) -> tuple[bool, str]:
    if "larger" in e:
        big, small = (_value(archs, e[k], e["fault"], e["field"]) for k in ("larger", "than"))
        text = f"{e['field']}: {e['larger']} {big}, {e['than']} {small}"
        ok = big is not None and small is not None and big > small
        return ok, text if ok else f"{e['larger']}'s {e['field']} above {e['than']}'s ({text})"
    value = _value(archs, e["arch"], e["fault"], e["field"])
    kind, n = next((b, e[b]) for b in ("min", "max", "equals") if b in e)
    ok = value is not None and {"min": lambda: value >= n, "max": lambda: value <= n,
                                "equals": lambda: value == n}[kind]()
    text = f"{e['arch']} {e['field']} {value}"
    return ok, text if ok else f"{e['arch']}'s {e['field']} {kind} {n} (got {value})"


CHECKS = {"pods": _pods, "proxy": _proxy, "counter": _counter, "call": _call, "capture": _capture,
          "journal": _journal}
