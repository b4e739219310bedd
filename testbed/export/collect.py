"""`testbed collect DIR`: read an exported experiment's run back from the cluster, with
kubectl (wherever it reaches the cluster), and build its journal (journal.py).

What it reads, per architecture's namespace:
- the traffic Jobs' pods and their logs: one JSON record per line (traffic_client.py);
- Chaos Mesh's timeline: the Workflow's nodes (their start and deadline) and the events
  on the chaos objects it created (Applied, Recovered, with what they applied to). Events
  last an hour by default on a cluster: collect within the hour.

Every kubectl call goes through one function (`Kubectl`), so the tests replay recorded
outputs instead of a cluster."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import TestbedError
from . import engines
from .bundle import META
from .journal import FaultTiming, Traffic, arch_result, assemble

Kubectl = Callable[[list[str]], str]
CHAOS_KINDS = {"PodChaos", "NetworkChaos"}
APPLIED_RE = re.compile(r"for (\S+)$")


class NoRun(TestbedError):
    """An architecture's namespace holds no traffic (not run there, or not started yet)."""


def kubectl_runner(context: str | None = None, timeout: float = 120) -> Kubectl:
    def run(args: list[str]) -> str:
        cmd = ["kubectl"] + (["--context", context] if context else []) + args
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise TestbedError("kubectl is not installed here: run `testbed collect` where kubectl reaches "
                               "the cluster") from None
        if r.returncode != 0:
            raise TestbedError(f"kubectl {' '.join(args)} failed: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout
    return run


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def parse_logs(logs: dict[str, str]) -> Traffic:
    """The Jobs' records by kind; lines that are not records (a runtime's noise) are skipped
    and counted."""
    out, noise = Traffic(), 0
    for pod, text in sorted(logs.items()):
        ended = False
        for line in text.splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                noise += bool(line.strip())
                continue
            kind = r.get("kind") if isinstance(r, dict) else None
            if kind == "start":
                out.starts[r["src"]] = r["start"]
            elif kind in ("request", "stream", "clean"):
                {"request": out.requests, "stream": out.streams, "clean": out.clean}[kind].append(r)
            elif kind == "warning":
                out.warnings.append(f"{pod}: {r.get('message')}")
            elif kind == "end":
                ended = True
        if not ended:
            out.warnings.append(f"{pod}: its log has no end record (the pod did not finish, or its log was cut)")
    if noise:
        out.warnings.append(f"{noise} log lines were not records")
    return out


def timeline(faults: list[dict], nodes: list[dict], events: list[dict]) -> dict[int, FaultTiming]:
    """When each exported fault acted: from the events on its chaos objects (named after the
    workflow node, itself named after the template), else from the nodes' start and deadline."""
    out = {}
    for f in faults:
        prefixes = tuple(f"{t}-" for t in f["templates"])
        mine = [e for e in events if e.get("involvedObject", {}).get("kind") in CHAOS_KINDS
                and e["involvedObject"].get("name", "").startswith(prefixes)]

        def when(e):
            return _epoch(e.get("eventTime") or e.get("firstTimestamp") or e.get("lastTimestamp"))

        applied = [e for e in mine if e.get("reason") == "Applied"]
        recovered = [e for e in mine if e.get("reason") == "Recovered"]
        ids = (APPLIED_RE.search(e.get("message", "")) for e in applied)
        timing = FaultTiming(hit=sorted({m.group(1) for m in ids if m}))
        if applied:
            timing.injected, timing.source = min(when(e) for e in applied), "events"
            if recovered:
                timing.recovered = max(_epoch(e.get("lastTimestamp")) or when(e) for e in recovered)
        spans = [n["spec"] for n in nodes if n.get("spec", {}).get("templateName") in f["templates"]]
        if timing.injected is None and spans:
            timing.injected, timing.source = min(_epoch(s["startTime"]) for s in spans), "workflow"
        if timing.recovered is None and spans and all(s.get("deadline") for s in spans):
            timing.recovered = max(_epoch(s["deadline"]) for s in spans)
        out[f["index"]] = timing
    return out


def gather(kubectl: Kubectl, arch: dict) -> tuple[Traffic, dict[int, FaultTiming]]:
    ns = arch["namespace"]
    pods = json.loads(kubectl(["-n", ns, "get", "pods", "-l", f"{engines.ROLE_LABEL}={engines.TRAFFIC}",
                               "-o", "json"]))["items"]
    if not pods:
        raise NoRun(f"no traffic pods in namespace {ns}: was `kubectl apply -f <dir>/run` run there?")
    logs, missing = {}, []
    for p in pods:
        try:
            logs[p["metadata"]["name"]] = kubectl(["-n", ns, "logs", p["metadata"]["name"], "-c", "client"])
        except TestbedError as exc:  # a pod that never ran: the others' records still count
            missing.append(f"{p['metadata']['name']}: no log ({exc})")
    traffic = parse_logs(logs)
    traffic.warnings += missing
    if not traffic.starts:
        raise NoRun(f"the traffic pods in {ns} have not started their traffic yet")
    nodes, events = [], []
    if arch.get("workflow"):
        nodes = json.loads(kubectl(["-n", ns, "get", "workflownodes.chaos-mesh.org", "-l",
                                    f"chaos-mesh.org/workflow={arch['workflow']}", "-o", "json"]))["items"]
        events = json.loads(kubectl(["-n", ns, "get", "events", "-o", "json"]))["items"]
    return traffic, timeline(arch["faults"], nodes, events)


def cluster_info(kubectl: Kubectl) -> dict:
    version = json.loads(kubectl(["version", "-o", "json"]))
    return {"context": kubectl(["config", "current-context"]).strip(),
            "server": version.get("serverVersion", {}).get("gitVersion"),
            "collected": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def read_export(directory: str | Path) -> dict:
    path = Path(directory) / META
    try:
        meta = json.loads(path.read_text())
    except OSError as exc:
        raise TestbedError(f"{path}: cannot read it ({exc.strerror}): is {directory} a `testbed export k8s` "
                           "directory?") from None
    if not meta.get("traffic"):
        raise TestbedError(f"{directory} was exported from a cluster spec, not an experiment: it has no run to collect")
    return meta


def collect(directory: str | Path, archs: list[str] = (), kubectl: Kubectl | None = None,
            progress=lambda msg: None) -> dict:
    """The journal of the exported run in `directory`, read from the cluster."""
    meta = read_export(directory)
    kubectl = kubectl or kubectl_runner()
    unknown = [a for a in archs if a not in meta["architectures"]]
    if unknown:
        raise TestbedError(f"not exported in {directory}: {', '.join(unknown)} "
                           f"(exported: {', '.join(meta['architectures'])})")
    results = {}
    for arch in archs or list(meta["architectures"]):
        spec = meta["architectures"][arch]
        progress(f"[{arch}] reading namespace {spec['namespace']}")
        try:
            traffic, timings = gather(kubectl, spec)
        except NoRun as exc:
            if archs:  # asked for by name: its absence is an error
                raise
            progress(f"[{arch}] skipped: {exc}")
            continue
        results[arch] = arch_result(arch, spec, meta, traffic, timings)
    if not results:
        raise TestbedError(f"no architecture of {directory} has run in this cluster (namespaces: "
                           f"{', '.join(a['namespace'] for a in meta['architectures'].values())})")
    return assemble(meta, results, cluster_info(kubectl))
