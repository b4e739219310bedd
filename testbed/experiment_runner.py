"""Running an experiment: for each architecture, build the run (runner.py), measure what it
costs when the experiment asks (measure/costrun.py: idle and steady CPU, memory, config,
latency; the `none` baseline is then run too), drive steady traffic on every flow
(traffic/driver.py) while the fault schedule is carried out (chaos/schedule.py), check a
clean window, tear down; measure the faults from the records (measure/outcome.py) and write
the journal (journal/) after every architecture. A sweep repeats the cost window at each
size of the cluster (sweep.py).

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
from .chaos.kinds import KINDS
from .chaos.registry import make_fault
from .cluster.backend import DEFAULT_BACKEND, check_backend
from .errors import TestbedError
from .experiment import Experiment
from .journal import JournalWriter
from .journal.writer import environment
from .measure import costrun, latency
from .measure.blast import Window, definitions, timeline
from .measure.outcome import clean_window, fault_entry
from .mesh import envoy
from .spec import to_yaml
from .sweep import step_cluster
from .traffic import driver

CLEAN_WINDOW = 3.0  # seconds of traffic after every revert, which must be error-free


def run_experiment(exp: Experiment, spec_text: str, archs: list[str] | None = None, out_dir: str | Path = "out",
                   progress=lambda msg: None, repeat: tuple[int, int] = (0, 1), backend: str = DEFAULT_BACKEND,
                   extra: dict | None = None) -> dict:
    """Run the experiment in each architecture, each cluster built by `backend`; returns the
    journal (also written to OUT/journal.json; `extra` fields go into its header). Raises
    `signals.Interrupted` after writing it, when a signal stopped it."""
    check_backend(backend)
    runner.require_root()
    archs = list(archs) if archs else list(exp.runs)
    unknown = [a for a in archs if a not in exp.runs]
    if unknown:
        raise TestbedError(f"architecture(s) {', '.join(unknown)} not in the experiment "
                           f"({', '.join(exp.architectures)})")
    if exp.cost is not None and "none" not in archs:
        archs.insert(0, "none")  # latency added is measured against it, in the same run
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "experiment.yaml", spec_text)
    spec_path = out / "cluster.yaml"
    write_text(spec_path, exp.cluster_text)
    writer = JournalWriter(out / "journal.json", dict(header(exp, spec_text, repeat, backend), **(extra or {})))
    writer.save()
    status = "completed"
    with signals.handled():
        try:
            if exp.sweep is not None:
                status = _sweep(exp, archs, out, writer, progress, backend)
            else:
                for arch in archs:
                    result = run_arch(exp, arch, spec_path, out, progress, backend=backend)
                    writer.architecture(arch, result)
                    if result["status"] == "failed":
                        status = "failed"
                        progress(f"[{arch}] failed: {result['error']}")
                _latency_added(writer.data, out)
        except signals.Interrupted as stop:
            with signals.shielded(in_flight=True):
                partial = getattr(stop, "result", None)
                if partial is not None and exp.sweep is None:
                    writer.data["architectures"][partial["architecture"]] = partial
                writer.finish("interrupted")
            raise
    return writer.finish(status)


def header(exp: Experiment, spec_text: str, repeat: tuple[int, int], backend: str = DEFAULT_BACKEND) -> dict:
    cost = None if exp.cost is None else {"totalRate": exp.cost.total_rate, "seconds": exp.cost.seconds,
                                          "idle": exp.cost.idle, "warmup": costrun.WARMUP}
    return {"experiment": exp.name, "source": exp.source, "environment": environment(envoy.version()),
            "seed": exp.seed, "redirect": exp.redirect, "backend": backend,
            "traffic": {"rate": exp.rate, "duration": exp.duration, "longLivedInterval": driver.STREAM_INTERVAL,
                        "cleanWindow": CLEAN_WINDOW},
            "cost_settings": cost, "affected": definitions(exp.error_points, exp.latency_factor),
            "spec": spec_text, "cluster": exp.cluster_text, "repeat": {"index": repeat[0], "of": repeat[1]},
            "sweep": None}


def run_arch(exp: Experiment, arch: str, spec_path: Path, out: Path, progress, faults_too: bool = True,
             label: str | None = None, backend: str = DEFAULT_BACKEND) -> dict:
    """One architecture, start to end. The result is complete on every path; a signal is
    re-raised once it is recorded (the caller writes the journal). `label` names its record
    files (default: the architecture)."""
    label = label or arch
    run_id = f"x{secrets.token_hex(2)}{list(exp.runs).index(arch) if arch in exp.runs else 9}"
    result: dict = {"architecture": arch, "run": run_id, "status": "completed", "error": None, "faults": [],
                    "cost": None}
    traffic = clean = None
    faults: list = []
    flows: list[tuple[str, str]] = []
    # the traffic phase, with the faults: skipped when cost is all there is to measure (the
    # `none` baseline of proxy faults, which it has no proxy to suffer)
    applicable = [f for f in exp.faults if arch != "none" or not KINDS[f.kind].needs_proxy]
    plain = faults_too and (applicable or exp.cost is None)

    def say(msg):
        progress(f"[{arch}] {msg}")

    try:
        with signals.Unwind() as unwind:
            say(f"building (run {run_id})")
            t0 = time.monotonic()
            st = runner.up(spec_path, arch, exp.redirect, run_id, backend=backend)
            unwind.callback(runner.down, run_id)
            result["up_s"], result["timings"] = round(time.monotonic() - t0, 3), st["timings"]
            cluster = runner.cluster_of(run_id)
            mesh = runner.mesh_of(run_id) if arch != "none" else None
            flows = driver.flows(cluster.plan)
            if exp.cost is not None:
                result["cost"], records = costrun.measure(cluster, mesh, exp.cost, out / ".records" / label / "cost",
                                                          say)
                result["files"] = {"cost": f"cost-{label}.jsonl"}
                write_text(out / result["files"]["cost"], "".join(_line(r) for r in records))
            if plain:
                ctx = ChaosContext(cluster.plan, cluster, mesh, exp.rate, out / ".records" / label / "faults")
                faults = [make_fault(f, ctx, i) for i, f in enumerate(exp.faults)]
                for f in faults:  # registered before anything is injected: each is reverted on every path
                    unwind.callback(f.stop)
                for f in faults:
                    f.arm()
                say(f"traffic on {len(flows)} flows at {exp.rate:g}/s each for {exp.duration:g}s")
                traffic = driver.start(cluster, exp.rate, exp.duration, out / ".records" / label / "main",
                                       streams=True)
                schedule.run(faults, traffic.start, say)
                traffic.wait()
                say("checking a clean window")
                clean = driver.start(cluster, exp.rate, CLEAN_WINDOW, out / ".records" / label / "clean")
                clean.wait()
    except signals.Interrupted as stop:
        result.update(status="interrupted", error="stopped by a signal")
        with signals.shielded(in_flight=True):
            _measure(exp, label, result, faults, flows, traffic, clean, out)
        stop.result = result  # the caller writes it into the journal
        raise
    except Exception as exc:  # noqa: BLE001 - recorded in the journal; the next architecture goes on
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    _measure(exp, label, result, faults, flows, traffic, clean, out)
    return result


def _measure(exp: Experiment, arch: str, result: dict, faults: list, flows: list[tuple[str, str]], traffic, clean,
             out: Path) -> None:
    """Fill the result from whatever was recorded, and write the record files."""
    if traffic is not None:
        got = traffic.read()
        records, streams = got["requests"], got["streams"]
        baseline = Window(1.0, exp.baseline_end)  # the first second is warm-up
        injections = [f.spec.at for f in faults]
        for f in faults:
            f.finish()
            result["faults"].append(fault_entry(f.spec, f.facts(), f.details, schedule.times(f, traffic.start),
                                                records, streams, flows, baseline, injections, exp.duration,
                                                exp.error_points, exp.latency_factor,
                                                {p.name: p.service for p in exp.cluster.pods}))
        result["requests"] = sum(r.get("error") != "generator-overload" for r in records)
        result["not_sent"] = len(records) - result["requests"]
        result["generator_overloaded"] = result["not_sent"] > 0
        result["clean_after"] = clean_window(clean.read()["requests"]) if clean is not None else None
        files = {"requests": f"requests-{arch}.jsonl", "streams": f"streams-{arch}.jsonl",
                 "timeline": f"timeline-{arch}.csv"}
        write_text(out / files["requests"], "".join(_line(r) for r in records))
        write_text(out / files["streams"], "".join(_line(r) for r in streams))
        _write_timeline(out / files["timeline"], records)
        result["files"] = dict(result.get("files") or {}, **files)
    if result.get("cost") and result["cost"]["load"]["not_sent"]:
        result["generator_overloaded"] = True
    for t in (traffic, clean):
        if t is not None:
            t.remove()
    _tidy(out, arch)


def _tidy(out: Path, arch: str) -> None:
    import shutil

    shutil.rmtree(out / ".records" / arch, ignore_errors=True)
    try:
        (out / ".records").rmdir()
    except OSError:
        pass  # another architecture's records are still there


def _latency_added(journal: dict, out: Path) -> None:
    """Each architecture's latency against `none`'s, from the cost windows' records."""
    results = journal["architectures"]
    base = results.get("none", {})
    if not (base.get("cost") and base.get("files", {}).get("cost")):
        return
    base_ms = _latencies(out / base["files"]["cost"])
    for arch, r in results.items():
        if arch != "none" and r.get("cost") and r.get("files", {}).get("cost"):
            r["cost"]["latency_added_ms"] = latency.added(_latencies(out / r["files"]["cost"]), base_ms,
                                                          seed=journal.get("seed", 1))


def _latencies(path: Path) -> list[float]:
    out = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("status") == 200:
                out.append(r["latency_ms"])
    return out


def _sweep(exp: Experiment, archs: list[str], out: Path, writer: JournalWriter, progress,
           backend: str = DEFAULT_BACKEND) -> str:
    """The cost window at each step, every architecture; the journal's `sweep` section."""
    sweep = {"parameter": exp.sweep.parameter, "steps": []}
    writer.data["sweep"] = sweep
    status = "completed"
    for value in exp.sweep.values:
        cluster = step_cluster(exp.cluster, exp.sweep.parameter, value)
        path = out / f"cluster-{exp.sweep.parameter}-{value}.yaml"
        write_text(path, to_yaml(cluster))
        step = {"value": value, "pods": len(cluster.pods), "services": len(cluster.services),
                "nodes": len(cluster.nodes), "cluster": path.name, "architectures": {}}
        sweep["steps"].append(step)
        for arch in archs:
            progress(f"{exp.sweep.parameter}={value}")
            try:
                result = run_arch(exp, arch, path, out, progress, faults_too=False,
                                  label=f"{arch}-{exp.sweep.parameter}{value}", backend=backend)
            except signals.Interrupted as stop:
                step["architectures"][arch] = getattr(stop, "result", None)
                raise
            result.pop("faults", None)
            step["architectures"][arch] = result
            writer.save()
            if result["status"] == "failed":
                status = "failed"
    return status


def _line(record: dict) -> str:
    return json.dumps(record) + "\n"


def _write_timeline(path: Path, records: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["second", "src", "dst", "requests", "failed", "p50_ms", "p99_ms"])
    w.writeheader()
    w.writerows(timeline(records))
    write_text(path, buf.getvalue())
