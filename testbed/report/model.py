"""What a report shows, computed from journals (through journal.load, the only way in) and
the record files beside them: the scorecard, each run's context and rerun command, the cost
of each architecture, each fault side by side, the sweeps, and, for two runs of one
experiment, what changed beyond the noise. Pure data: html.py and markdown.py lay it out."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from .. import journal as journals_mod
from .compare import compare
from .scorecard import Row, scorecard

# published figures, theirs, with their setup (never mixed with ours)
REFERENCES = [
    {"what": "Istio 1.24 sidecar", "cpu": "0.20 vCPU per 1,000 rps", "memory": "60 MB",
     "setup": "Istio's performance page: 1,000 rps through one sidecar, 1 KB payloads, 16 connections"},
    {"what": "Istio 1.24 waypoint", "cpu": "0.25 vCPU per 1,000 rps", "memory": "60 MB",
     "setup": "the same load through one waypoint proxy"},
    {"what": "Istio 1.24 ztunnel", "cpu": "0.06 vCPU per 1,000 rps", "memory": "12 MB",
     "setup": "the same load through ztunnel (L4 only)"},
    {"what": "Envoy", "cpu": "", "memory": "37-42 KB per cluster with stats, about 15 KB without",
     "setup": "Envoy's docs on memory per cluster"},
]


@dataclass
class FaultView:
    anchor: str
    journal: str
    index: int
    label: str
    kind: str
    at: float
    by_arch: dict[str, dict]  # arch -> the fault entry
    timelines: dict[str, list[dict]] = field(default_factory=dict)


@dataclass
class RunView:
    anchor: str
    path: str
    journal: dict
    rerun: str
    simulated: bool
    engine: str


@dataclass
class Report:
    runs: list[RunView]
    scorecard: list[Row]
    faults: list[FaultView]
    costs: list[tuple[RunView, dict[str, dict]]]  # per run: arch -> cost section
    sweeps: list[tuple[RunView, dict]]
    comparison: dict | None
    references: list[dict]
    fidelity: list[dict] = field(default_factory=list)  # real and simulated runs of one experiment, side by side


def _timeline(base: Path, result: dict) -> list[dict]:
    name = (result.get("files") or {}).get("timeline")
    if not name or not (base / name).exists():
        return []
    with open(base / name) as f:
        return list(csv.DictReader(f))


def rerun_command(j: dict) -> str:
    """How to get this result again: a simulation, the command that made it; from the
    journal alone (`testbed rerun`), where the journal holds its experiment; else the
    experiment as run, copied beside its journal."""
    if j.get("simulated"):
        return j.get("command") or "testbed simulate"
    out = Path(j["_path"]).parent
    if j.get("spec") and j.get("cluster") and j.get("engine", "namespaces") == "namespaces":
        return f"testbed rerun {j['_path']}"
    archs = " ".join(f"--arch {a}" for a in j["architectures"])
    return f"testbed run {out / 'experiment.yaml'} {archs} --out {out}-again".replace("  ", " ")


def build(paths: list[str | Path]) -> Report:
    loaded = [journals_mod.load(p) for p in paths]
    runs = [RunView(f"run-{k}", j["_path"], j, rerun_command(j), bool(j.get("simulated")), j.get("engine", "?"))
            for k, j in enumerate(loaded)]
    faults = []
    for k, run in enumerate(runs):
        j = run.journal
        base = Path(j["_path"]).parent
        n = max((len(r.get("faults", [])) for r in j["architectures"].values()), default=0)
        for i in range(n):
            by_arch = {a: r["faults"][i] for a, r in j["architectures"].items() if len(r.get("faults", [])) > i}
            first = next(iter(by_arch.values()))
            t = first["target"]
            label = f"{first['kind']} on {t['kind']} {t['name']} at {first['at']:g}s ({j['experiment']}" \
                    f"{', simulated' if run.simulated else ''})"
            view = FaultView(f"fault-{k}-{i}", j["_path"], i, label, first["kind"], first["at"], by_arch)
            view.timelines = {a: _timeline(base, j["architectures"][a]) for a in by_arch}
            faults.append(view)
    costs = [(run, {a: r["cost"] for a, r in run.journal["architectures"].items() if r.get("cost")})
             for run in runs]
    costs = [c for c in costs if c[1]]
    sweeps = [(run, run.journal["sweep"]) for run in runs if run.journal.get("sweep")]
    comparison = compare(loaded[0], loaded[1]) if len(loaded) == 2 else None
    return Report(runs, scorecard(loaded), faults, costs, sweeps, comparison, REFERENCES, fidelity(loaded))


def fidelity(loaded: list[dict]) -> list[dict]:
    """Each simulated run beside the real runs of the same experiment (sim/fidelity.py)."""
    from ..sim.fidelity import compare as side_by_side

    out = []
    for sim in (j for j in loaded if j.get("simulated")):
        real = [j for j in loaded if not j.get("simulated") and j["experiment"] == sim["experiment"]]
        if real:
            out.append(side_by_side(real[0], sim, real, (sim.get("simulation") or {}).get("shared_kib")))
    return out


def anchor_of(report: Report, source: dict) -> str:
    """Where a scorecard cell's figure came from, as a link target in the page."""
    for k, run in enumerate(report.runs):
        if run.path == source.get("journal"):
            return f"fault-{k}-{source['fault']}" if source.get("fault") is not None else f"cost-{k}"
    return ""
