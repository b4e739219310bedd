"""What calibration reads from the journals of real runs (through journal.load only): every
cost window (an architecture's, or a sweep step's), and every measured fault, each with its
cluster (parsed again from the journal or the step's file), its architecture and the record
files beside the journal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import journal as journals
from ..checker import parse_duration
from ..errors import TestbedError
from ..spec import ClusterSpec, loads_cluster
from .placement import SimCluster
from .topology import SimTopology


@dataclass
class CostWindow:
    journal: str
    label: str  # "sidecar" or "sidecar @ podsPerService=4"
    arch: str
    redirect: str
    cluster: ClusterSpec
    cost: dict
    records: Path | None  # the window's request records (cost-<label>.jsonl)

    def topology(self) -> SimTopology:
        return SimTopology(SimCluster(self.cluster), self.arch)

    def latencies(self) -> dict[tuple[str, str], list[float]]:
        """Successful requests' latency per flow."""
        out: dict[tuple[str, str], list[float]] = {}
        if self.records is None or not self.records.exists():
            return out
        with open(self.records) as f:
            for line in f:
                r = json.loads(line)
                if r.get("status") == 200:
                    out.setdefault((r["src"], r["dst"]), []).append(r["latency_ms"])
        return out


@dataclass
class FaultRun:
    journal: str
    arch: str
    index: int
    cluster: ClusterSpec
    entry: dict
    next_at: float  # the cut-off: the next injection, or the end of the traffic
    records: Path | None
    rate: float
    options: dict  # the fault's own fields as the experiment gave them (restartDelay, behavior, ...)

    def requests(self) -> dict[tuple[str, str], list[dict]]:
        out: dict[tuple[str, str], list[dict]] = {}
        if self.records is None or not self.records.exists():
            return out
        with open(self.records) as f:
            for line in f:
                r = json.loads(line)
                out.setdefault((r["src"], r["dst"]), []).append(r)
        return out


def _cluster(text: str, where: str) -> ClusterSpec:
    try:
        return loads_cluster(text, where)
    except TestbedError as exc:
        raise TestbedError(f"{where}: the journal's cluster does not load ({exc})") from None


def _fault_options(text: str) -> list[dict]:
    """Each fault's own fields, from the experiment as the journal copied it (durations in
    seconds)."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return []
    out = []
    for f in doc.get("faults") or [] if isinstance(doc, dict) else []:
        opts = {}
        for k, v in (f.items() if isinstance(f, dict) else ()):
            if k in ("restartDelay", "latency", "jitter"):
                opts[k] = parse_duration(v)
            elif k in ("behavior", "failurePolicy", "strategy", "percent"):
                opts[k] = v
        out.append(opts)
    return out


def read(paths: list[str | Path]) -> tuple[list[dict], list[CostWindow], list[FaultRun]]:
    """(the journals, their cost windows, their faults); simulated journals are refused:
    the model is calibrated by what was measured, never by itself."""
    loaded, costs, faults = [], [], []
    for path in paths:
        j = journals.load(path)
        if j.get("simulated"):
            raise TestbedError(f"{j['_path']}: a simulated journal: calibrate from real runs only")
        loaded.append(j)
        base = Path(j["_path"]).parent
        redirect = j.get("redirect") or "ebpf"
        if j.get("sweep"):
            for step in j["sweep"]["steps"]:
                spec = _cluster((base / step["cluster"]).read_text(), str(base / step["cluster"]))
                for arch, r in step["architectures"].items():
                    if r and r.get("status") == "completed" and r.get("cost"):
                        rec = (r.get("files") or {}).get("cost")
                        costs.append(CostWindow(j["_path"], f"{arch} @ {j['sweep']['parameter']}={step['value']}",
                                                arch, redirect, spec, r["cost"], base / rec if rec else None))
            continue
        spec = _cluster(j.get("cluster") or "", j["_path"])
        traffic = j.get("traffic") or {}
        options = _fault_options(j.get("spec") or "")
        for arch, r in j["architectures"].items():
            files = r.get("files") or {}
            if r.get("cost"):  # measured before any fault: it stands even when a fault failed later
                costs.append(CostWindow(j["_path"], arch, arch, redirect, spec, r["cost"],
                                        base / files["cost"] if files.get("cost") else None))
            if r.get("status") != "completed":
                continue
            ats = [f["at"] for f in r["faults"]]
            for i, f in enumerate(r["faults"]):
                if f.get("measured") and f.get("injected_at") is not None:
                    later = [a for a in ats if a > f["at"]]
                    faults.append(FaultRun(j["_path"], arch, i, spec, f, min(later + [traffic.get("duration") or 0]),
                                           base / files["requests"] if files.get("requests") else None,
                                           float(traffic.get("rate") or 10), options[i] if i < len(options) else {}))
    return loaded, costs, faults
