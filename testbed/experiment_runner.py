"""Running an experiment: for each architecture, build the run (runner.py), drive steady
traffic on every flow (traffic/driver.py), carry out the fault schedule (chaos/schedule.py),
check a clean window, tear down; measure from the records (measure/outcome.py) and write
the journal (journal/) after every architecture.

Every path writes what was measured: on success, on an architecture that fails (recorded
as `failed` with its error, and the experiment goes on with the next), and on a signal (the
architecture is `interrupted`, the journal says so, the command exits 128 + signal). The
agents stream their records to the output directory as they go, so none is lost."""

from __future__ import annotations

import csv
import io
import json
import secrets
import time
from pathlib import Path

from . import runner, signals
from .atomic import write_text
from .chaos import schedule
from .chaos.base import ChaosContext
from .chaos.registry import make_fault
from .errors import TestbedError
from .experiment import Experiment
from .journal import JournalWriter
from .journal.writer import environment
from .measure.blast import Window, definitions, timeline
from .measure.outcome import clean_window, fault_entry
from .mesh import envoy
from .traffic import driver

CLEAN_WINDOW = 3.0  # seconds of traffic after every revert, which must be error-free


def run_experiment(exp: Experiment, spec_text: str, archs: list[str] | None = None, out_dir: str | Path = "out",
                   progress=lambda msg: None) -> dict:
    """Run the experiment in each architecture; returns the journal (also written to
    OUT/journal.json). Raises `signals.Interrupted` after writing it, when a signal stopped it."""
    runner.require_root()
    archs = archs or list(exp.architectures)
    unknown = [a for a in archs if a not in exp.architectures]
    if unknown:
        raise TestbedError(f"architecture(s) {', '.join(unknown)} not in the experiment "
                           f"({', '.join(exp.architectures)})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "experiment.yaml", spec_text)
    spec_path = out / "cluster.yaml"
    write_text(spec_path, exp.cluster_text)
    writer = JournalWriter(out / "journal.json", {
        "experiment": exp.name, "source": exp.source, "environment": environment(envoy.version()),
        "seed": exp.seed, "redirect": exp.redirect,
        "traffic": {"rate": exp.rate, "duration": exp.duration, "longLivedInterval": driver.STREAM_INTERVAL,
                    "cleanWindow": CLEAN_WINDOW},
        "affected": definitions(exp.error_points, exp.latency_factor),
        "spec": spec_text, "cluster": exp.cluster_text, "repeat": {"index": 0, "of": 1}, "sweep": None,
    })
    writer.save()
    status = "completed"
    with signals.handled():
        try:
            for arch in archs:
                result = run_arch(exp, arch, spec_path, out, progress)
                writer.architecture(arch, result)
                if result["status"] == "failed":
                    status = "failed"
                    progress(f"[{arch}] failed: {result['error']}")
        except signals.Interrupted as stop:
            with signals.shielded(in_flight=True):
                partial = getattr(stop, "result", None)
                if partial is not None:
                    writer.data["architectures"][partial["architecture"]] = partial
                writer.finish("interrupted")
            raise
    return writer.finish(status)


def run_arch(exp: Experiment, arch: str, spec_path: Path, out: Path, progress) -> dict:
    """One architecture, start to end. The result is complete on every path; a signal is
    re-raised once it is recorded (the caller writes the journal)."""
    run_id = f"x{secrets.token_hex(2)}{exp.architectures.index(arch)}"
    result: dict = {"architecture": arch, "run": run_id, "status": "completed", "error": None, "faults": [],
                    "cost": None}
    traffic = clean = None
    faults: list = []
    flows: list[tuple[str, str]] = []
    try:
        with signals.Unwind() as unwind:
            progress(f"[{arch}] building (run {run_id})")
            t0 = time.monotonic()
            st = runner.up(spec_path, arch, exp.redirect, run_id)
            unwind.callback(runner.down, run_id)
            result["up_s"], result["timings"] = round(time.monotonic() - t0, 3), st["timings"]
            cluster = runner.cluster_of(run_id)
            ctx = ChaosContext(cluster.plan, cluster, runner.mesh_of(run_id) if arch != "none" else None)
            faults = [make_fault(f, ctx, i) for i, f in enumerate(exp.faults)]
            for f in faults:  # registered before anything is injected: each is reverted on every path
                unwind.callback(f.stop)
            flows = driver.flows(cluster.plan)
            progress(f"[{arch}] traffic on {len(flows)} flows at {exp.rate:g}/s each for {exp.duration:g}s")
            traffic = driver.start(cluster, exp.rate, exp.duration, out / ".records" / arch / "main", streams=True)
            schedule.run(faults, traffic.start, lambda msg: progress(f"[{arch}] {msg}"))
            traffic.wait()
            progress(f"[{arch}] checking a clean window")
            clean = driver.start(cluster, exp.rate, CLEAN_WINDOW, out / ".records" / arch / "clean")
            clean.wait()
    except signals.Interrupted as stop:
        result.update(status="interrupted", error="stopped by a signal")
        with signals.shielded(in_flight=True):
            _measure(exp, arch, result, faults, flows, traffic, clean, out)
        stop.result = result  # the caller writes it into the journal
        raise
    except Exception as exc:  # noqa: BLE001 - recorded in the journal; the next architecture goes on
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    _measure(exp, arch, result, faults, flows, traffic, clean, out)
    return result


def _measure(exp: Experiment, arch: str, result: dict, faults: list, flows: list[tuple[str, str]], traffic, clean,
             out: Path) -> None:
    """Fill the result from whatever was recorded, and write the record files."""
    if traffic is None:
        return
    got = traffic.read()
    records, streams = got["requests"], got["streams"]
    baseline = Window(1.0, exp.baseline_end)  # the first second is warm-up
    injections = [f.spec.at for f in faults]
    for f in faults:
        result["faults"].append(fault_entry(f.spec, f.facts(), f.details, schedule.times(f, traffic.start), records,
                                            streams, flows, baseline, injections, exp.duration, exp.error_points,
                                            exp.latency_factor))
    result["requests"] = sum(r.get("error") != "generator-overload" for r in records)
    result["not_sent"] = len(records) - result["requests"]
    result["generator_overloaded"] = result["not_sent"] > 0
    result["clean_after"] = clean_window(clean.read()["requests"]) if clean is not None else None
    files = {"requests": f"requests-{arch}.jsonl", "streams": f"streams-{arch}.jsonl",
             "timeline": f"timeline-{arch}.csv"}
    write_text(out / files["requests"], "".join(_line(r) for r in records))
    write_text(out / files["streams"], "".join(_line(r) for r in streams))
    _write_timeline(out / files["timeline"], records)
    result["files"] = files
    for t in (traffic, clean):
        if t is not None:
            t.remove()
    for d in (out / ".records" / arch, out / ".records"):
        try:
            d.rmdir()
        except OSError:
            pass  # not empty: another architecture's records are still there


def _line(record: dict) -> str:
    return json.dumps(record) + "\n"


def _write_timeline(path: Path, records: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["second", "src", "dst", "requests", "failed", "p50_ms", "p99_ms"])
    w.writeheader()
    w.writerows(timeline(records))
    write_text(path, buf.getvalue())
