"""`testbed simulate`: an experiment run by the model instead of the machine, written as a
journal like a real run's (the same sections, read by the same reader and report), marked
`simulated`, with engine `simpy` and a `simulation` section saying how: the scale, the
calibration it used, what a host is, and how traffic was aggregated."""

from __future__ import annotations

import csv
import io
import time
from importlib.metadata import version
from pathlib import Path

from ..atomic import write_text
from ..errors import TestbedError
from ..experiment import Experiment
from ..journal import JournalWriter
from ..journal.writer import environment
from ..measure.blast import definitions
from ..spec import to_yaml
from ..sweep import step_cluster
from .model import ArchRun
from .params import Params
from .placement import Scale, SimCluster, scaled_spec

STREAM_INTERVAL = 0.2  # traffic/driver.py: the long-lived connections' request interval
TIMELINE_FLOWS = 500  # up to this many flows, the per-second timeline file is written (the report plots it)
AGGREGATION = ("simpy schedules the faults and the proxies' outages, restarts and rolls; traffic is per-flow rates on "
               "the driver's schedule, never one event per request: a request's outcome is computed only where an "
               "outage reaches it, and every window's count comes from the schedule (docs/simulation.md)")


def header(exp: Experiment, spec_text: str, params: Params, scale: Scale, hosts: str, cluster: SimCluster) -> dict:
    cost = None if exp.cost is None else {"totalRate": exp.cost.total_rate, "seconds": exp.cost.seconds,
                                          "idle": exp.cost.idle, "warmup": 0.0}
    cal = params.data
    return {"engine": "simpy", "simulated": True, "experiment": exp.name, "source": exp.source,
            "environment": dict(environment(_envoy(cal)), simpy=version("simpy")), "seed": exp.seed,
            "redirect": exp.redirect,
            "traffic": {"rate": exp.rate, "duration": exp.duration, "longLivedInterval": STREAM_INTERVAL,
                        "cleanWindow": 3.0},
            "cost_settings": cost, "affected": definitions(exp.error_points, exp.latency_factor),
            "spec": spec_text, "cluster": exp.cluster_text, "repeat": {"index": 0, "of": 1}, "sweep": None,
            "simulation": {"scale": scale.as_dict(), "nodes": len(cluster.nodes), "pods": len(cluster.pods),
                           "services": len(cluster.services), "accounts": len(cluster.accounts()),
                           "flows": len(cluster.flows), "hosts": hosts, "aggregation": AGGREGATION,
                           "shared_kib": params.shared_kib,
                           "calibration": {"path": params.source, "made": cal.get("made"),
                                           "from": [f.get("journal") for f in cal.get("from", [])],
                                           "machine": (cal.get("environment") or {}).get("kernel"),
                                           # roles it has no runs of, and whose figures they took
                                           "stand_ins": dict(params.stand_ins)}}}


def command(exp: Experiment, params: Params, scale: Scale, hosts: str | None, archs: list[str] | None,
            out: Path) -> str:
    """The command that makes this simulation again."""
    parts = ["testbed simulate", exp.source]
    for flag, v in (("--nodes", scale.nodes), ("--pods-per-node", scale.pods_per_node),
                    ("--services", scale.services), ("--accounts", scale.accounts), ("--hosts", hosts)):
        if v is not None:
            parts.append(f"{flag} {v}")
    if not params.source.endswith("(shipped)"):
        parts.append(f"--calibration {params.source}")
    parts += [f"--arch {a}" for a in archs or ()]
    return " ".join(parts + [f"--out {out}"])


def _envoy(calibration: dict) -> str | None:
    """The Envoy the calibration measured: what the simulated figures are of."""
    versions = {(f.get("environment") or {}).get("envoy") for f in calibration.get("from", [])} - {None}
    return ", ".join(sorted(versions)) or None


def _timeline(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["second", "src", "dst", "requests", "failed", "p50_ms", "p99_ms"])
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def simulate(exp: Experiment, spec_text: str, params: Params, scale: Scale | None = None, hosts: str | None = None,
             archs: list[str] | None = None, out_dir: str | Path = "out/sim", progress=lambda msg: None) -> dict:
    """Simulate the experiment in each architecture; returns the journal (also written to
    OUT/journal.json). `hosts`: `machine` (default when nothing is scaled, as the testbed
    runs) or `node` (default when scaled: each node a machine of its own)."""
    scale = scale or Scale()
    asked = list(archs or ())
    archs = list(archs) if archs else list(exp.runs)
    unknown = [a for a in archs if a not in exp.runs]
    if unknown:
        raise TestbedError(f"architecture(s) {', '.join(unknown)} not in the experiment ({', '.join(exp.runs)})")
    if exp.cost is not None and "none" not in archs:
        archs.insert(0, "none")
    if exp.sweep is not None and scale.scaled:
        raise TestbedError("a sweep resizes the cluster itself: simulate it without --nodes, --pods-per-node, "
                           "--services or --accounts")
    default_hosts = "node" if scale.scaled else "machine"
    hosts = hosts or default_hosts
    t0 = time.monotonic()
    spec = scaled_spec(exp.cluster, scale)
    cluster = SimCluster(spec)
    progress(f"placed {len(cluster.pods)} pods of {len(cluster.services)} services on {len(cluster.nodes)} nodes, "
             f"{len(cluster.flows)} flows ({time.monotonic() - t0:.1f}s)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "experiment.yaml", spec_text)
    write_text(out / "cluster.yaml", exp.cluster_text)
    writer = JournalWriter(out / "journal.json", header(exp, spec_text, params, scale, hosts, cluster)
                           | {"command": command(exp, params, scale, hosts if hosts != default_hosts else None, asked,
                                                 out)})
    if exp.sweep is not None:
        writer.data["sweep"] = _sweep(exp, params, archs, hosts, out, progress)
        writer.save()
        return writer.finish("completed")
    for arch in archs:
        t1 = time.monotonic()
        run = ArchRun(exp, cluster, arch, params, hosts)
        result = run.result()
        if len(cluster.flows) <= TIMELINE_FLOWS and run.traffic_ran:
            result["files"] = {"timeline": f"timeline-{arch}.csv"}
            write_text(out / result["files"]["timeline"], _timeline(run.timeline()))
        result["simulated_s"] = round(time.monotonic() - t1, 3)
        writer.architecture(arch, result)
        progress(f"[{arch}] {len(run.topo.proxies)} proxies, {len(result['faults'])} faults in "
                 f"{result['simulated_s']:.1f}s")
    journal = writer.finish("completed")
    journal["simulation"]["seconds"] = round(time.monotonic() - t0, 3)
    writer.save()
    return journal


def _sweep(exp: Experiment, params: Params, archs: list[str], hosts: str, out: Path, progress) -> dict:
    """The cost at each step of the sweep, as experiment_runner does it for real."""
    sweep = {"parameter": exp.sweep.parameter, "steps": []}
    for value in exp.sweep.values:
        spec = step_cluster(exp.cluster, exp.sweep.parameter, value)
        path = out / f"cluster-{exp.sweep.parameter}-{value}.yaml"
        write_text(path, to_yaml(spec))
        cluster = SimCluster(spec)
        step = {"value": value, "pods": len(spec.pods), "services": len(spec.services), "nodes": len(spec.nodes),
                "cluster": path.name, "architectures": {}}
        for arch in archs:
            result = ArchRun(exp, cluster, arch, params, hosts, faults_too=False).result()
            result.pop("faults", None)
            step["architectures"][arch] = result
        sweep["steps"].append(step)
        progress(f"{exp.sweep.parameter}={value}: {len(spec.pods)} pods")
    return sweep
