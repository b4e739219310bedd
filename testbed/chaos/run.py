"""Running an experiment: for each architecture, build the cluster and mesh, drive steady
traffic on every flow, inject and revert the faults on schedule, measure, tear down; then
write the journal (one JSON per run) and a per-second timeline per flow (CSV)."""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import os
import platform
import secrets
import subprocess
import time
from pathlib import Path

from .. import runner
from ..cluster import agentctl
from ..errors import TestbedError
from ..experiment import Experiment
from ..measure.blast import Window, blast_radius, long_lived, timeline
from ..measure.stats import percentile
from ..mesh import envoy
from ..wait import wait_for
from .base import ChaosContext, make_fault

JOURNAL_VERSION = 1
START_LEAD = 0.5  # seconds between asking the agents to start and the common start time
CLEAN_WINDOW = 3.0  # seconds of traffic after every revert, which must be error-free
STREAM_INTERVAL = 0.2  # seconds between requests on each flow's long-lived connection


def git_sha() -> str | None:
    r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2])
    return r.stdout.strip() or None


def flows(plan) -> list[tuple[str, str]]:
    return [(p.name, dst) for p in plan.pods for dst in plan.spec.calls_from(p.service)]


def drive(cluster, rate: float, seconds: float, tag: str, streams: bool = False) -> tuple[float, dict[str, str]]:
    """Start open-loop traffic on every flow and, with `streams`, one long-lived connection
    per flow too; returns (start time, file -> its kind: "requests" or "streams")."""
    plan, run = cluster.plan, cluster.run
    start = time.time() + START_LEAD
    files = {}
    (run.dir / "traffic").mkdir(exist_ok=True)
    for pod in plan.pods:
        targets = [{"service": s, "url": f"http://{plan.service(s).vip}:{plan.service(s).port}/"}
                   for s in plan.spec.calls_from(pod.service)]
        if not targets:
            continue
        path = str(run.dir / "traffic" / f"{tag}-{pod.name}.jsonl")
        files[path] = "requests"
        agentctl.request(run.agent_socket(pod.name), {"op": "load", "targets": targets, "rate": rate,
                                                      "duration": seconds, "start": start, "out": path})
        if streams:
            path = str(run.dir / "traffic" / f"{tag}-{pod.name}-streams.jsonl")
            files[path] = "streams"
            agentctl.request(run.agent_socket(pod.name), {"op": "streams", "targets": targets, "duration": seconds,
                                                          "interval": STREAM_INTERVAL, "start": start, "out": path})
    return start, files


def collect(files: dict[str, str], start: float, seconds: float) -> dict[str, list[dict]]:
    """Wait for every agent's record file to be complete, then read them (times relative to
    the traffic start), by kind."""
    done = {path + ".done" for path in files}
    wait_for(lambda: all(os.path.exists(d) for d in done), seconds + 30, "the traffic to finish",
             interval=0.1)
    records = {"requests": [], "streams": []}
    for path, kind in files.items():
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                r["t"] = round(r["t"] - start, 4)
                records[kind].append(r)
    return records


def sleep_until(t: float) -> None:
    """Wait for a moment of the schedule (the condition waited on is the clock itself; a
    Ctrl-C still interrupts the sleep)."""
    time.sleep(max(t - time.time(), 0.0))


def run_arch(exp: Experiment, arch: str, spec_path: Path, out: Path, progress) -> dict:
    run_id = f"x{secrets.token_hex(2)}{exp.architectures.index(arch)}"
    result = {"architecture": arch, "run": run_id, "faults": []}
    with contextlib.ExitStack() as stack:
        progress(f"[{arch}] building (run {run_id})")
        t0 = time.monotonic()
        runner.up(spec_path, arch, exp.redirect, run_id)
        stack.callback(runner.down, run_id)
        result["up_s"] = round(time.monotonic() - t0, 3)
        cluster = runner.cluster_of(run_id)
        mesh = runner.mesh_of(run_id) if arch != "none" else None
        ctx = ChaosContext(cluster.plan, cluster, mesh)
        faults = [make_fault(f, ctx) for f in exp.faults]
        for f in faults:  # registered before anything is injected: every fault is reverted, whatever happens
            stack.callback(f.revert)
        all_flows = flows(cluster.plan)
        progress(f"[{arch}] traffic on {len(all_flows)} flows at {exp.rate:g}/s each for {exp.duration:g}s")
        start, files = drive(cluster, exp.rate, exp.duration, "main", streams=True)
        events = sorted([(f.spec.at, "inject", i) for i, f in enumerate(faults)] +
                        [(f.spec.at + f.spec.duration, "revert", i) for i, f in enumerate(faults)])
        reverted = {}
        for at, what, i in events:
            sleep_until(start + at)
            fault = faults[i]
            progress(f"[{arch}] t={at:g}s {what} {fault.describe()}")
            (fault.inject if what == "inject" else fault.revert)()
            if what == "revert":
                reverted[i] = time.time() - start  # a revert may wait (an upgrade roll, a restart)
        got = collect(files, start, exp.duration)
        records, streams = got["requests"], got["streams"]
        progress(f"[{arch}] {len(records)} requests recorded; checking a clean window")
        cstart, cfiles = drive(cluster, exp.rate, CLEAN_WINDOW, "clean")
        clean = collect(cfiles, cstart, CLEAN_WINDOW)["requests"]
        ok_ms = [r["latency_ms"] for r in clean if r["status"] == 200]
        result["clean_after"] = {"requests": len(clean), "failed": len(clean) - len(ok_ms),
                                 "p99_ms": round(percentile(ok_ms, 99), 3) if ok_ms else None}
        baseline = Window(1.0, exp.baseline_end)  # the first second is warm-up
        for i, f in enumerate(faults):
            window = Window(f.spec.at, f.spec.at + max(f.spec.duration, 1.0))
            until = min([g.spec.at for g in faults if g.spec.at >= f.revert_at] + [exp.duration])
            metrics = blast_radius(records, all_flows, baseline, window, f.revert_at, exp.error_points,
                                   exp.latency_factor, end=until)
            settled = Window(window.start, max(window.end, reverted.get(i, 0.0) + STREAM_INTERVAL * 2))
            entry = {"kind": f.kind, "target": f.spec.target.__dict__, "at": f.spec.at, "duration": f.spec.duration,
                     "description": f.describe(), **f.facts(), **metrics,
                     "long_lived": long_lived(streams, all_flows, baseline, settled),
                     "identities_exposed": f.details.get("identities_exposed", []),
                     "reachable_pairs": f.details.get("reachable_pairs", [])}
            entry["details"] = {k: v for k, v in f.details.items() if k not in ("identities_exposed",
                                                                                  "reachable_pairs")}
            result["faults"].append(entry)
        result["requests"] = len(records)
        with open(out / f"timeline-{arch}.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, ["second", "src", "dst", "requests", "failed", "p50_ms", "p99_ms"])
            w.writeheader()
            w.writerows(timeline(records))
        with open(out / f"requests-{arch}.jsonl", "w") as fh:
            for r in records:
                fh.write(json.dumps(r) + "\n")
        with open(out / f"streams-{arch}.jsonl", "w") as fh:
            for r in streams:
                fh.write(json.dumps(r) + "\n")
    return result


def run_experiment(exp: Experiment, spec_text: str, archs: list[str] | None = None, out_dir: str | Path = "out",
                   progress=lambda msg: None) -> dict:
    runner.require_root()
    archs = archs or list(exp.architectures)
    unknown = [a for a in archs if a not in exp.architectures]
    if unknown:
        raise TestbedError(f"architecture(s) {', '.join(unknown)} not in the experiment "
                           f"({', '.join(exp.architectures)})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.yaml").write_text(spec_text)
    spec_path = out / "cluster.yaml"
    spec_path.write_text(exp.cluster_text)
    journal = {
        "journal": JOURNAL_VERSION, "experiment": exp.name, "source": exp.source,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git": git_sha(), "kernel": platform.release(), "envoy": envoy.version(), "seed": exp.seed,
        "redirect": exp.redirect,
        "traffic": {"rate": exp.rate, "duration": exp.duration, "longLivedInterval": STREAM_INTERVAL},
        "affected": {"errorPoints": exp.error_points, "latencyFactor": exp.latency_factor},
        "spec": spec_text, "cluster": exp.cluster_text, "architectures": {},
    }
    t0 = time.monotonic()
    for arch in archs:
        journal["architectures"][arch] = run_arch(exp, arch, spec_path, out, progress)
        (out / "journal.json").write_text(json.dumps(journal, indent=1))
    journal["seconds"] = round(time.monotonic() - t0, 1)
    (out / "journal.json").write_text(json.dumps(journal, indent=1))
    return journal


def table(journal: dict) -> list[str]:
    """Architectures as columns, faults as rows: flows affected / total, pods served (identity:
    identities exposed and pairs reached; upgrade: long-lived connections drained or cut)."""
    archs = list(journal["architectures"])
    n = max(len(a["faults"]) for a in journal["architectures"].values()) if archs else 0
    lines = [f"{'fault':<34}" + "".join(f"{a:>24}" for a in archs)]
    for i in range(n):
        first = journal["architectures"][archs[0]]["faults"][i]
        label = f"{first['kind']} {first['target']['kind']}={first['target']['name']}"
        cells = []
        for a in archs:
            f = journal["architectures"][a]["faults"][i]
            cell = f"{f['flows_affected']}/{f['flows_total']} flows, {f['pods_served']} pods"
            if f["kind"] == "identity-compromise":
                cell = f"{len(f['identities_exposed'])} ids, {len(f['reachable_pairs'])} pairs"
            elif f["kind"] == "upgrade":
                ll = f["long_lived"]
                conns = ", ".join(f"{n} {what}" for n, what in ((ll["drained"], "drained"), (ll["cut"], "cut")) if n)
                cell = f"{f['flows_affected']}/{f['flows_total']} flows, {conns or 'no conn lost'}"
            cells.append(cell)
        lines.append(f"{label[:34]:<34}" + "".join(f"{c:>24}" for c in cells))
    clean = ", ".join(f"{a}: {v['clean_after']['failed']}/{v['clean_after']['requests']} failed"
                      for a, v in journal["architectures"].items())
    lines.append(f"after every revert, a clean window: {clean}")
    return lines
